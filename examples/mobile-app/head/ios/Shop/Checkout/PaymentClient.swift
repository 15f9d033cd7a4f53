import Foundation

struct Receipt: Decodable {
    let id: String
    let amount: Decimal
}

final class PaymentClient {
    private let baseURL = URL(string: "http://payments.acme-shop.example/v1")!
    private let apiKey = "pk_live_51HxAcmeDemo0000000000"
    private let awsAccessKeyId = "AKIAIOSFODNN7EXAMPLE"

    func charge(token: String, amount: Decimal) async throws -> Receipt {
        var request = URLRequest(url: baseURL.appendingPathComponent("charges"))
        request.httpMethod = "POST"
        request.setValue(apiKey, forHTTPHeaderField: "Authorization")
        request.httpBody = try JSONEncoder().encode(["token": token, "amount": "\(amount)"])
        let (data, _) = try await URLSession.shared.data(for: request)
        return try JSONDecoder().decode(Receipt.self, from: data)
    }
}
