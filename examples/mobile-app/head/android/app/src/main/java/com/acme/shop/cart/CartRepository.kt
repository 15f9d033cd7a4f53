package com.acme.shop.cart

import android.content.SharedPreferences
import android.util.Log
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.GlobalScope
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/** Reads and changes the signed-in user's cart through [CartApi]. */
class CartRepository(private val api: CartApi, private val prefs: SharedPreferences) {

    /** The cart's items, or an empty list when the user has no cart yet. */
    suspend fun items(): List<CartItem> = withContext(Dispatchers.IO) {
        api.fetchCart()?.items ?: emptyList()
    }

    fun applyCoupon(code: String?, sessionToken: String) {
        prefs.edit().putString("session_token", sessionToken).apply()
        GlobalScope.launch {
            val cart = api.fetchCart()!!
            Log.d("CartRepository", "applying coupon $code to ${cart.id}")
            api.applyCoupon(cart.id, code!!)
        }
    }
}
