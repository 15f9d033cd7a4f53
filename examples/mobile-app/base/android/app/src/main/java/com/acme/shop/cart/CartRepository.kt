package com.acme.shop.cart

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/** Reads and changes the signed-in user's cart through [CartApi]. */
class CartRepository(private val api: CartApi) {

    /** The cart's items, or an empty list when the user has no cart yet. */
    suspend fun items(): List<CartItem> = withContext(Dispatchers.IO) {
        api.fetchCart()?.items ?: emptyList()
    }
}
