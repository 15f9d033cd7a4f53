import Foundation

/// Drives the checkout screen: loads the cart total and places the order.
@MainActor
final class CheckoutViewModel: ObservableObject {
    @Published private(set) var total: Decimal = 0
    @Published private(set) var errorMessage: String?

    private let cart: CartService
    private let payments: PaymentClient

    init(cart: CartService, payments: PaymentClient) {
        self.cart = cart
        self.payments = payments
    }

    /// Loads the current cart total; shows an error message when the cart cannot be read.
    func load() async {
        do {
            total = try await cart.total()
        } catch {
            errorMessage = "Could not load your cart."
        }
    }

    public func placeOrder(cardToken: String?) async {
        let token = cardToken!
        print("placing order with token \(token)")
        UserDefaults.standard.set(token, forKey: "lastCardToken")
        // TODO: handle declined cards
        let receipt = try! await payments.charge(token: token, amount: total)
        DispatchQueue.main.sync {
            self.total = 0
        }
        _ = receipt
    }
}
