// Public: //transports:tls. TLS on OpenSSL 3 (Twisted's twisted.internet.ssl and
// twisted.protocols.tls): contexts made from PEM files, listenSSL / connectSSL, startTLS on a
// live connection, and the layer that does the work, TLSProtocol: a ProtocolWrapper that speaks
// TLS to its transport through OpenSSL's in-memory API (Twisted's TLSMemoryBIOProtocol), so it
// runs over a TCP connection, over any other transport, and over a StringTransport in tests.
//
//   auto context = std::make_shared<twist::tls::ServerContext>(twist::tls::ServerOptions{
//       .certificateChainFile = "server.pem", .privateKeyFile = "server.key"});
//   twist::tls::listenSSL(reactor, 8443, factory, context);
//
//   auto client = std::make_shared<twist::tls::ClientContext>();  // system CAs, verifying
//   twist::tls::connectSSL(reactor, "example.com", 443, clientFactory, client);
//
// Secure by default: TLS 1.2 at least, forward-secret AEAD ciphers only, no compression, no
// renegotiation; a client verifies the server's certificate and host name unless told not to.
// The protocol's connectionMade runs once the handshake has succeeded (getPeerCertificate() and
// negotiatedProtocol() are known there); a handshake that fails never reaches the protocol: a
// client factory hears clientConnectionFailed with a CertificateError or HandshakeError, a
// server logs the failure and closes.
#pragma once

#include <openssl/types.h>  // SSL, SSL_CTX, X509

#include <concepts>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "twist/protocols/policies.h"
#include "twist/reactor/deferred.h"
#include "twist/reactor/delayed_call.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/interfaces.h"

typedef struct ssl_session_st SSL_SESSION;  // as <openssl/ssl.h> has it

namespace twist::tls {

// ---- errors ----

// Base of the TLS reasons a connection ends with. A ConnectionLost: code that checks for a
// non-clean close sees these too.
class TLSError : public ConnectionLost {
 public:
  explicit TLSError(const std::string& message) : ConnectionLost(message) {}
};

// The peer's certificate was refused (by the verification this side asked for).
class CertificateError : public TLSError {
 public:
  enum class Kind {
    UnknownIssuer,     // not signed by a trusted CA (self-signed, or an unknown CA)
    Expired,           // past its notAfter
    NotYetValid,       // before its notBefore
    HostnameMismatch,  // valid, but for another name (or IP address)
    NoCertificate,     // the peer sent none, and one is required (client certificates)
    Other,             // another verification error: see verifyResult()
  };
  CertificateError(Kind kind, long verifyResult, const std::string& detail);
  Kind kind() const { return kind_; }
  // OpenSSL's X509_V_ERR_* code (0 when none applies).
  long verifyResult() const { return verifyResult_; }

 private:
  Kind kind_;
  long verifyResult_;
};

// The handshake failed for another reason than this side refusing a certificate.
class HandshakeError : public TLSError {
 public:
  enum class Kind {
    ProtocolVersion,        // no TLS version both sides allow
    NoSharedCipher,         // no cipher both sides allow
    NoApplicationProtocol,  // ALPN: no protocol both sides speak
    PeerAlert,              // the peer refused (an alert: e.g. it did not trust our certificate)
    NotTLS,                 // what arrived is not TLS (plain text, garbage)
    Timeout,                // not finished within the handshake timeout
    Closed,                 // the peer closed the connection during the handshake
    Other,
  };
  HandshakeError(Kind kind, const std::string& detail);
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// The peer closed the TCP connection without TLS's close_notify: what arrived may have been cut
// short by an attacker (a truncation). Protocols whose messages carry their own length may
// treat it as a clean close.
class TruncatedError : public TLSError {
 public:
  TruncatedError()
      : TLSError("TLS: the peer closed the connection without close_notify (truncated)") {}
};

// A context could not be made: a missing or malformed PEM file, a wrong password, a key that
// does not match the certificate, a bad cipher or ALPN list. what() says which and why.
class ContextError : public Error {
 public:
  using Error::Error;
};

// ---- contexts ----

enum class Version { TLS1_2, TLS1_3 };

// A certificate and its key, as PEM files.
struct CertificateFiles {
  std::string chainFile;  // the certificate, then the intermediates
  std::string keyFile;
  std::string password{};  // for an encrypted key
};

struct ServerOptions {
  // The certificate chain (PEM: the server's certificate, then its intermediates) and key.
  std::string certificateChainFile{};
  std::string privateKeyFile{};
  std::string password{};  // for an encrypted private key
  // SNI: more certificates. A client that asks for a name one of them is valid for (by its
  // subjectAltNames or CN, wildcards included) gets that one; any other gets the main one.
  std::vector<CertificateFiles> sniCertificates{};
  // ALPN: the protocols served, in order of preference ({"h2", "http/1.1"}). A client offering
  // none of them is refused (no_application_protocol); one offering no ALPN at all is served.
  std::vector<std::string> alpn{};
  // Client certificates: verify them against these CA certificates (PEM). "" = none asked for.
  std::string clientCAFile{};
  // With clientCAFile: refuse clients without a certificate (else one is asked for, optional).
  bool requireClientCertificate = true;
  Version minimumVersion = Version::TLS1_2;
  // TLS 1.2 ciphers in OpenSSL's syntax; "" = forward-secret AEAD ones only (ECDHE with
  // AES-GCM or ChaCha20-Poly1305). TLS 1.3 suites; "" = OpenSSL's (all AEAD).
  std::string cipherList{};
  std::string cipherSuites{};
  // Session resumption with tickets (stateless; TLS 1.2 and 1.3). The server's session cache
  // (for TLS 1.2 session IDs) is always on.
  bool sessionTickets = true;
};

// A server's TLS configuration: one OpenSSL SSL_CTX (and one per SNI certificate), loaded once
// and shared by every connection of every port and thread that uses it. Throws ContextError.
class ServerContext {
 public:
  explicit ServerContext(const ServerOptions& options);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // The SSL_CTX new connections start with (for settings twist does not cover).
  SSL_CTX* native() const { return ctx_; }

 private:
  friend class TLSProtocol;
  static int onServerName(SSL* ssl, int* alert, void* arg);
  static int onAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                    const unsigned char* in, unsigned int inlen, void* arg);
  void configure(SSL_CTX* ctx, const ServerOptions& options);

  SSL_CTX* ctx_ = nullptr;
  std::vector<SSL_CTX*> sni_;
  std::string alpnWire_;
};

struct ClientOptions {
  // The CAs to trust (PEM); "" = the system's store (/etc/ssl/certs).
  std::string caFile{};
  // Verify the server's certificate and host name. Turn off only for tests: without it anyone
  // in the middle can read and change the connection.
  bool verifyPeer = true;
  // A client certificate, for servers that ask for one.
  std::string certificateChainFile{};
  std::string privateKeyFile{};
  std::string password{};
  // ALPN: the protocols offered, in order of preference.
  std::vector<std::string> alpn{};
  Version minimumVersion = Version::TLS1_2;
  std::string cipherList{};
  std::string cipherSuites{};
  // Keep each server's session (by name and port) and offer it on the next connection, which
  // then skips the full handshake.
  bool sessionResumption = true;
};

// A client's TLS configuration, shared by its connections (thread safe). Throws ContextError.
class ClientContext {
 public:
  explicit ClientContext(const ClientOptions& options = {});
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  SSL_CTX* native() const { return ctx_; }
  bool verifyPeer() const { return verify_; }

 private:
  friend class TLSProtocol;
  static int onNewSession(SSL* ssl, SSL_SESSION* session);
  // The session kept for `key` (taken out: TLS 1.3 tickets are used once), or nullptr.
  SSL_SESSION* takeSession(const std::string& key) const;
  void keepSession(const std::string& key, SSL_SESSION* session) const;

  SSL_CTX* ctx_ = nullptr;
  bool verify_ = true;
  bool resume_ = true;
  mutable std::mutex mutex_;
  mutable std::vector<std::pair<std::string, SSL_SESSION*>> sessions_;  // oldest first
};

// ---- what a protocol sees ----

// A certificate (the peer's), shared and immutable.
class Certificate {
 public:
  explicit Certificate(X509* owned);
  // "CN=localhost,O=twist" (RFC 2253).
  std::string subject() const;
  std::string issuer() const;
  std::string commonName() const;
  // The certificate in PEM.
  std::string pem() const;
  X509* native() const { return cert_.get(); }

 private:
  std::shared_ptr<X509> cert_;
};

// What a TLS connection tells its protocol beyond ITransport (Twisted's ISSLTransport). Get it
// with tls::tlsTransport(*this) from inside a protocol.
class ITLSTransport {
 public:
  virtual ~ITLSTransport() = default;
  virtual bool handshakeDone() const = 0;
  // Fires once the handshake has succeeded (at once if it has), or fails with its error.
  virtual Deferred<void> whenHandshakeDone() = 0;
  // The peer's certificate (a server's always; a client's when it sent one), or nullopt.
  virtual std::optional<Certificate> getPeerCertificate() const = 0;
  // The ALPN protocol agreed on ("" when none).
  virtual std::string negotiatedProtocol() const = 0;
  // "TLSv1.3", and the cipher ("TLS_AES_128_GCM_SHA256").
  virtual std::string version() const = 0;
  virtual std::string cipher() const = 0;
  // The handshake resumed an earlier session.
  virtual bool sessionReused() const = 0;
  // SNI: the name the client asked for (server side) or sent (client side); "" when none.
  virtual std::string serverName() const = 0;
  virtual SSL* native() const = 0;
};

// The TLS connection under `protocol` (through any ProtocolWrappers in between), or nullptr.
ITLSTransport* tlsTransport(const Protocol& protocol);

// ---- the layer ----

enum class Side { Client, Server };

struct LayerOptions {
  // Times the handshake out, and coalesces writes made outside the layer's callbacks into
  // records at the end of the loop's turn; nullptr: no timeout, and such writes are encrypted
  // at once.
  IReactorTime* clock = nullptr;
  // Seconds the handshake may take (0: no limit): a peer that connects and sends nothing holds
  // nothing for longer.
  double handshakeTimeout = 30;
  // Client: the server's name, sent as SNI and checked against its certificate ("" and an IP
  // address: no SNI; an IP address is checked as one).
  std::string serverName{};
  // The wrapped protocol is already connected (startTLS): no second connectionMade.
  bool alreadyConnected = false;
};

class TLSFactory;

// TLS between a protocol and its transport (Twisted's TLSMemoryBIOProtocol). Ciphertext goes
// to and comes from the transport; the wrapped protocol reads and writes plaintext through this
// object, its transport. Until the handshake has succeeded the wrapped protocol is not connected
// (unless alreadyConnected) and what it writes waits. Writes made during one of its callbacks
// are sent as one record (of up to 16 KiB) when the callback returns; with a clock, writes made
// elsewhere are, at the end of the loop's turn. Flow control works on the plaintext side: a
// producer registered here is paused when the transport's (ciphertext) buffer is full, and
// pauseProducing stops dataReceived. loseConnection sends close_notify; a close_notify from
// the peer ends the connection cleanly (a half-closeable protocol hears readConnectionLost).
class TLSProtocol final : public ProtocolWrapper, public ITLSTransport {
 public:
  TLSProtocol(std::shared_ptr<const ServerContext> context, std::shared_ptr<Protocol> wrapped,
              LayerOptions options = {}, TLSFactory* factory = nullptr);
  TLSProtocol(std::shared_ptr<const ClientContext> context, std::shared_ptr<Protocol> wrapped,
              LayerOptions options = {}, TLSFactory* factory = nullptr);
  ~TLSProtocol() override;

  Side side() const { return side_; }

  // ---- from the transport ----
  void connectionMade() override;
  void dataReceived(std::string_view data) override;
  void connectionLost(const Failure& reason) override;
  IHalfCloseableProtocol* halfCloseable() override;
  void readConnectionLost() override;

  // ---- from the wrapped protocol ----
  void write(std::string_view data) override;
  void writeSequence(std::span<const std::string_view> data) override;
  void loseConnection() override;
  void abortConnection() override;
  void loseWriteConnection() override;
  void pauseProducing() override;
  void resumeProducing() override;
  void registerProducer(IProducer* producer, bool streaming) override;
  void unregisterProducer() override;
  IProducer* producer() const override { return producer_; }
  bool disconnecting() const override;
  size_t bufferedSize() const override;

  // ITLSTransport
  bool handshakeDone() const override { return handshakeDone_; }
  Deferred<void> whenHandshakeDone() override;
  std::optional<Certificate> getPeerCertificate() const override;
  std::string negotiatedProtocol() const override;
  std::string version() const override;
  std::string cipher() const override;
  bool sessionReused() const override;
  std::string serverName() const override;
  SSL* native() const override { return ssl_; }

 private:
  friend class ClientContext;
  // Registered with the transport in the place of the wrapped protocol's producer, so that what
  // that producer writes when asked is sent as records when it returns.
  struct ProducerProxy : IProducer {
    TLSProtocol* owner = nullptr;
    void resumeProducing() override;
    void pauseProducing() override;
    void stopProducing() override;
  };
  struct Scope;
  struct BioAccess;

  void setUp();
  // Runs the handshake and reads what has arrived, as far as it goes.
  void pump();
  void readRecords();
  void handshakeSucceeded();
  void closeNotifyReceived();
  // Encrypts what is waiting (one record per 16 KiB); inside a callback only whole records
  // unless `now` (the callback's end does the rest).
  void flushOutput(bool now = false);
  void encryptPending(size_t n);  // the first n bytes of what waits
  void encrypt(std::string_view data);
  void scheduleFlush();
  void scheduleDrain();
  // Sends close_notify (once), after what is waiting.
  void shutdownTLS();
  // Ends the connection with `reason`: the alert OpenSSL queued goes out, then the transport
  // closes; the wrapped protocol (or the client factory) receives `reason`.
  void fail(Failure reason);
  Failure errorFromOpenSSL(int sslError, bool handshaking);
  template <class F>
  void callWrapped(F&& fn);
  size_t pendingOutput() const { return out_.size() + outView_.size(); }

  Side side_;
  std::shared_ptr<const ServerContext> server_;
  std::shared_ptr<const ClientContext> client_;
  LayerOptions options_;
  TLSFactory* tlsFactory_;
  SSL* ssl_ = nullptr;
  std::string sessionKey_;

  // Ciphertext being handed to OpenSSL (the bytes of the current dataReceived, or stash_), and
  // what OpenSSL has not taken yet while dataReceived is paused.
  std::string_view in_;
  std::string stash_;
  // Plaintext waiting to be encrypted: a view of the first write while it lies in the buffer
  // the layer decrypts into (an echo), then a copy.
  std::string out_;
  std::string_view outView_;
  const char* plain_ = nullptr;  // the buffer being delivered from, while delivering
  std::unique_ptr<char[]> ownPlain_;

  int depth_ = 0;  // inside a callback into the wrapped protocol (or its producer)
  bool started_ = false;
  bool handshakeDone_ = false;
  bool wrappedConnected_ = false;
  bool closing_ = false;       // loseConnection / abortConnection / a failure
  bool writeClosed_ = false;   // loseWriteConnection
  bool sentShutdown_ = false;  // close_notify sent
  bool peerClosed_ = false;    // close_notify received
  bool paused_ = false;        // pauseProducing
  bool lost_ = false;          // connectionLost received
  bool failed_ = false;
  bool flushScheduled_ = false;
  Failure failure_;
  DelayedCall timeout_;
  DelayedCall flushCall_;
  DelayedCall drainCall_;
  std::vector<Deferred<void>> waiters_;
  IProducer* producer_ = nullptr;
  ProducerProxy proxy_;
};

// Wraps another factory's protocols in TLSProtocols: what listenSSL and connectSSL listen and
// connect with. As a client factory it turns a connection whose handshake failed into
// clientConnectionFailed (with the TLS error), not clientConnectionLost.
class TLSFactory : public WrappingFactory {
 public:
  TLSFactory(std::shared_ptr<Factory> wrapped, std::shared_ptr<const ServerContext> context,
             LayerOptions options = {});
  TLSFactory(std::shared_ptr<Factory> wrapped, std::shared_ptr<const ClientContext> context,
             LayerOptions options = {});

  void clientConnectionLost(IConnector& connector, const Failure& reason) override;
  // Called by a client TLSProtocol as its connection ends: why, and whether the wrapped
  // protocol was connected (else the handshake failed: clientConnectionFailed).
  void connectionEnded(const Failure& reason, bool connected) { ended_.emplace(reason, connected); }

 protected:
  std::shared_ptr<ProtocolWrapper> wrap(std::shared_ptr<Protocol> wrapped,
                                        const Address& addr) override;

 private:
  std::shared_ptr<const ServerContext> server_;
  std::shared_ptr<const ClientContext> client_;
  LayerOptions options_;
  std::optional<std::pair<Failure, bool>> ended_;
};

// ---- listening, connecting, upgrading ----

struct ListenSSLOptions {
  std::string interface {};  // as ListenTCPOptions
  int backlog = 0;
  bool reusePort = false;
  bool ipv6Only = false;
  double handshakeTimeout = 30;  // seconds; 0 = none
};

struct ConnectSSLOptions {
  double timeout = 30;  // as ConnectTCPOptions: resolving and connecting
  std::optional<std::pair<std::string, uint16_t>> bindAddress{};
  // The name to send as SNI and to check the certificate against; "" = the host connected to.
  std::string serverName{};
  double handshakeTimeout = 30;
};

template <class R>
concept TCPReactor = std::derived_from<R, IReactorTCP> && std::derived_from<R, IReactorTime>;

std::shared_ptr<IListeningPort> listenSSL(IReactorTCP& tcp, IReactorTime& clock, uint16_t port,
                                          std::shared_ptr<Factory> factory,
                                          std::shared_ptr<const ServerContext> context,
                                          const ListenSSLOptions& options = {});
std::shared_ptr<IConnector> connectSSL(IReactorTCP& tcp, IReactorTime& clock, std::string_view host,
                                       uint16_t port, std::shared_ptr<ClientFactory> factory,
                                       std::shared_ptr<const ClientContext> context,
                                       const ConnectSSLOptions& options = {});

// Listens on `port` for TLS (Twisted's reactor.listenSSL): listenTCP with every connection's
// protocol behind a TLSProtocol. Throws what listenTCP throws.
template <TCPReactor R>
std::shared_ptr<IListeningPort> listenSSL(R& reactor, uint16_t port,
                                          std::shared_ptr<Factory> factory,
                                          std::shared_ptr<const ServerContext> context,
                                          const ListenSSLOptions& options = {}) {
  return listenSSL(reactor, reactor, port, std::move(factory), std::move(context), options);
}

// Connects to host:port over TLS (Twisted's reactor.connectSSL), verifying the server as
// `context` says against `host` (or options.serverName). The factory hears
// clientConnectionFailed with a ConnectError, CertificateError or HandshakeError.
template <TCPReactor R>
std::shared_ptr<IConnector> connectSSL(R& reactor, std::string_view host, uint16_t port,
                                       std::shared_ptr<ClientFactory> factory,
                                       std::shared_ptr<const ClientContext> context,
                                       const ConnectSSLOptions& options = {}) {
  return connectSSL(reactor, reactor, host, port, std::move(factory), std::move(context), options);
}

// STARTTLS: upgrades `protocol`'s live connection to TLS from now on, as the server. What was
// written before goes out in the clear first; what the protocol writes from now on is
// encrypted (and waits for the handshake). The Deferred fires when the handshake has succeeded
// and fails with its error (the connection then ends with it: connectionLost). `clock` (may be
// null) as LayerOptions::clock. Throws std::logic_error when the transport cannot take a layer.
// Bytes the protocol received but has not parsed yet stay with it, in the clear: the side that
// upgrades should drop them (LineReceiver::clearLineBuffer()), as anything the peer sent after
// the STARTTLS exchange before the handshake may have been injected by a man in the middle
// (CVE-2011-0411).
Deferred<void> startTLS(Protocol& protocol, std::shared_ptr<const ServerContext> context,
                        IReactorTime* clock = nullptr, double handshakeTimeout = 30);
// The same as the client, verifying the server against `serverName`.
Deferred<void> startTLS(Protocol& protocol, std::shared_ptr<const ClientContext> context,
                        std::string serverName, IReactorTime* clock = nullptr,
                        double handshakeTimeout = 30);

}  // namespace twist::tls
