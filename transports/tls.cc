#include "twist/transports/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "twist/reactor/log.h"

namespace twist::tls {

namespace {

// The largest plaintext of one record: what one SSL_read returns at most.
constexpr size_t kRecord = 16 * 1024;
// The plaintext buffer is kept between flushes up to this capacity.
constexpr size_t kKeepBuffer = 4 * kRecord;
// Client sessions kept per context (one per server name and port).
constexpr size_t kMaxSessions = 256;

// TLS 1.2: forward secrecy and AEAD only (Mozilla's "intermediate" list, without DHE).
constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Everything OpenSSL queued for this thread, as one line (and the queue emptied).
std::string openSSLErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

[[noreturn]] void contextError(const std::string& what) {
  throw ContextError("tls: " + what + ": " + openSSLErrors());
}

int passwordCallback(char* buf, int size, int, void* userdata) {
  if (userdata == nullptr) return 0;
  const auto* pw = static_cast<const std::string*>(userdata);
  if (pw->size() > static_cast<size_t>(size)) return 0;
  std::memcpy(buf, pw->data(), pw->size());
  return static_cast<int>(pw->size());
}

SSL_CTX* newContext(const SSL_METHOD* method, Version minimum, const std::string& ciphers,
                    const std::string& suites) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(method);
  if (ctx == nullptr) contextError("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx, minimum == Version::TLS1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
  // Renegotiation is a denial-of-service lever (each one a full handshake of the server's CPU)
  // and TLS 1.3 has none; compression leaks secrets (CRIME).
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // An idle connection gives its record buffers back (48 KiB per idle server connection
  // become 15.6; bench/tls_idle_memory.py), at a cost bench/run_tls.sh does not see.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, ciphers.empty() ? kDefaultCiphers : ciphers.c_str()) != 1) {
    SSL_CTX_free(ctx);
    contextError("bad cipher list '" + ciphers + "'");
  }
  if (!suites.empty() && SSL_CTX_set_ciphersuites(ctx, suites.c_str()) != 1) {
    SSL_CTX_free(ctx);
    contextError("bad TLS 1.3 cipher suites '" + suites + "'");
  }
  return ctx;
}

void loadCertificate(SSL_CTX* ctx, const std::string& chain, const std::string& key,
                     const std::string& password) {
  SSL_CTX_set_default_passwd_cb(ctx, passwordCallback);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, const_cast<std::string*>(&password));
  struct Reset {
    SSL_CTX* ctx;
    ~Reset() { SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr); }
  } reset{ctx};
  if (SSL_CTX_use_certificate_chain_file(ctx, chain.c_str()) != 1) {
    contextError("can't load the certificate chain '" + chain + "'");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      contextError("the private key '" + key + "' does not match the certificate '" + chain + "'");
    }
    contextError("can't load the private key '" + key + "' (a wrong password?)");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    contextError("the private key '" + key + "' does not match the certificate '" + chain + "'");
  }
}

// ALPN's wire format: each name preceded by its length.
std::string alpnWire(const std::vector<std::string>& names) {
  std::string wire;
  for (const auto& n : names) {
    if (n.empty() || n.size() > 255) {
      throw ContextError("tls: an ALPN protocol name must have 1 to 255 bytes: '" + n + "'");
    }
    wire += static_cast<char>(n.size());
    wire += n;
  }
  return wire;
}

bool isIPAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string nameToString(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

// The buffer records are decrypted into, one per thread (16 KiB a connection would be 160 MB
// for 10,000 idle ones); a layer delivering inside another's delivery (TLS over TLS) uses its
// own.
thread_local char tPlain[kRecord];
thread_local bool tPlainBusy = false;

}  // namespace

// ---- errors ----

CertificateError::CertificateError(Kind kind, long verifyResult, const std::string& detail)
    : TLSError("TLS: certificate refused: " + detail), kind_(kind), verifyResult_(verifyResult) {}

HandshakeError::HandshakeError(Kind kind, const std::string& detail)
    : TLSError("TLS handshake failed: " + detail), kind_(kind) {}

// ---- ServerContext ----

ServerContext::ServerContext(const ServerOptions& options) {
  alpnWire_ = alpnWire(options.alpn);
  ctx_ = newContext(TLS_server_method(), options.minimumVersion, options.cipherList,
                    options.cipherSuites);
  try {
    loadCertificate(ctx_, options.certificateChainFile, options.privateKeyFile, options.password);
    configure(ctx_, options);
    for (const auto& c : options.sniCertificates) {
      SSL_CTX* ctx = newContext(TLS_server_method(), options.minimumVersion, options.cipherList,
                                options.cipherSuites);
      sni_.push_back(ctx);
      loadCertificate(ctx, c.chainFile, c.keyFile, c.password);
      configure(ctx, options);
    }
  } catch (...) {
    for (SSL_CTX* c : sni_) SSL_CTX_free(c);
    SSL_CTX_free(ctx_);
    throw;
  }
  if (!sni_.empty()) {
    SSL_CTX_set_tlsext_servername_callback(ctx_, onServerName);
    SSL_CTX_set_tlsext_servername_arg(ctx_, this);
  }
}

void ServerContext::configure(SSL_CTX* ctx, const ServerOptions& options) {
  static const unsigned char kSessionContext[] = "twist";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  if (!options.sessionTickets) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (!alpnWire_.empty()) SSL_CTX_set_alpn_select_cb(ctx, onAlpn, this);
  if (!options.clientCAFile.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options.clientCAFile.c_str(), nullptr) != 1) {
      contextError("can't load the client CA file '" + options.clientCAFile + "'");
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.clientCAFile.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(
        ctx,
        SSL_VERIFY_PEER | (options.requireClientCertificate ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        nullptr);
  }
}

ServerContext::~ServerContext() {
  for (SSL_CTX* c : sni_) SSL_CTX_free(c);
  SSL_CTX_free(ctx_);
}

int ServerContext::onServerName(SSL* ssl, int*, void* arg) {
  auto* self = static_cast<ServerContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  for (SSL_CTX* ctx : self->sni_) {
    X509* cert = SSL_CTX_get0_certificate(ctx);
    if (cert != nullptr && X509_check_host(cert, name, 0, 0, nullptr) == 1) {
      SSL_set_SSL_CTX(ssl, ctx);
      break;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

int ServerContext::onAlpn(SSL*, const unsigned char** out, unsigned char* outlen,
                          const unsigned char* in, unsigned int inlen, void* arg) {
  auto* self = static_cast<ServerContext*>(arg);
  unsigned char* selected = nullptr;
  // The server's order of preference decides.
  if (SSL_select_next_proto(
          &selected, outlen, reinterpret_cast<const unsigned char*>(self->alpnWire_.data()),
          static_cast<unsigned>(self->alpnWire_.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol (RFC 7301)
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// ---- ClientContext ----

ClientContext::ClientContext(const ClientOptions& options)
    : verify_(options.verifyPeer), resume_(options.sessionResumption) {
  std::string wire = alpnWire(options.alpn);
  ctx_ = newContext(TLS_client_method(), options.minimumVersion, options.cipherList,
                    options.cipherSuites);
  try {
    if (verify_) {
      int ok = options.caFile.empty()
                   ? SSL_CTX_set_default_verify_paths(ctx_)
                   : SSL_CTX_load_verify_locations(ctx_, options.caFile.c_str(), nullptr);
      if (ok != 1) contextError("can't load the CA file '" + options.caFile + "'");
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    } else {
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    }
    if (!options.certificateChainFile.empty()) {
      loadCertificate(ctx_, options.certificateChainFile, options.privateKeyFile, options.password);
    }
    // SSL_CTX_set_alpn_protos returns 0 on success.
    if (!wire.empty() &&
        SSL_CTX_set_alpn_protos(ctx_, reinterpret_cast<const unsigned char*>(wire.data()),
                                static_cast<unsigned>(wire.size())) != 0) {
      contextError("can't set the ALPN protocols");
    }
    if (resume_) {
      // Sessions arrive after the handshake (TLS 1.3 sends them as tickets); twist keeps them
      // itself, by server name and port.
      SSL_CTX_set_session_cache_mode(ctx_,
                                     SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
      SSL_CTX_sess_set_new_cb(ctx_, onNewSession);
    } else {
      SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
    }
  } catch (...) {
    SSL_CTX_free(ctx_);
    throw;
  }
}

ClientContext::~ClientContext() {
  for (auto& [key, session] : sessions_) SSL_SESSION_free(session);
  SSL_CTX_free(ctx_);
}

SSL_SESSION* ClientContext::takeSession(const std::string& key) const {
  std::lock_guard lock(mutex_);
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (it->first != key) continue;
    SSL_SESSION* s = it->second;
    if (SSL_SESSION_get_protocol_version(s) == TLS1_3_VERSION) {
      sessions_.erase(it);  // a TLS 1.3 ticket is used once (RFC 8446, C.4); new ones follow
    } else {
      SSL_SESSION_up_ref(s);  // a TLS 1.2 session serves again (a resumption makes no new one)
    }
    return s;
  }
  return nullptr;
}

void ClientContext::keepSession(const std::string& key, SSL_SESSION* session) const {
  std::lock_guard lock(mutex_);
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (it->first == key) {
      SSL_SESSION_free(it->second);
      sessions_.erase(it);
      break;
    }
  }
  if (sessions_.size() >= kMaxSessions) {
    SSL_SESSION_free(sessions_.front().second);
    sessions_.erase(sessions_.begin());
  }
  sessions_.emplace_back(key, session);
}

int ClientContext::onNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* layer = static_cast<TLSProtocol*>(SSL_get_app_data(ssl));
  if (layer == nullptr || !layer->client_) return 0;
  layer->client_->keepSession(layer->sessionKey_, session);
  return 1;  // twist owns the session now
}

// ---- Certificate ----

Certificate::Certificate(X509* owned) : cert_(owned, X509_free) {}

std::string Certificate::subject() const {
  return nameToString(X509_get_subject_name(cert_.get()));
}

std::string Certificate::issuer() const { return nameToString(X509_get_issuer_name(cert_.get())); }

std::string Certificate::commonName() const {
  char buf[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert_.get()), NID_commonName, buf,
                                    sizeof buf);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

std::string Certificate::pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert_.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

ITLSTransport* tlsTransport(const Protocol& protocol) {
  ITransport* t = protocol.transport();
  while (t != nullptr) {
    if (auto* tls = dynamic_cast<ITLSTransport*>(t)) return tls;
    auto* wrapper = dynamic_cast<ProtocolWrapper*>(t);
    if (wrapper == nullptr) return nullptr;
    t = wrapper->transport();
  }
  return nullptr;
}

// ---- the BIO: OpenSSL reads the bytes of the current dataReceived in place, and writes
// records straight to the transport (no memory BIO, so no copy in and none out) ----

struct TLSProtocol::BioAccess {
  static int read(BIO* bio, char* out, int size) {
    auto* self = static_cast<TLSProtocol*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    if (self->in_.empty()) {
      BIO_set_retry_read(bio);
      return -1;
    }
    size_t n = std::min(self->in_.size(), static_cast<size_t>(size));
    std::memcpy(out, self->in_.data(), n);
    self->in_.remove_prefix(n);
    return static_cast<int>(n);
  }
  static int write(BIO* bio, const char* data, int size) {
    auto* self = static_cast<TLSProtocol*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    self->transport()->write(std::string_view(data, static_cast<size_t>(size)));
    return size;
  }
  static long ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }
  static int create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }
  static BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "twist transport");
      BIO_meth_set_read(m, read);
      BIO_meth_set_write(m, write);
      BIO_meth_set_ctrl(m, ctrl);
      BIO_meth_set_create(m, create);
      return m;
    }();
    return m;
  }
};

// ---- TLSProtocol ----

struct TLSProtocol::Scope {
  TLSProtocol& p;
  explicit Scope(TLSProtocol& p) : p(p) { ++p.depth_; }
  ~Scope() { --p.depth_; }
};

TLSProtocol::TLSProtocol(std::shared_ptr<const ServerContext> context,
                         std::shared_ptr<Protocol> wrapped, LayerOptions options,
                         TLSFactory* factory)
    : ProtocolWrapper(std::move(wrapped), factory),
      side_(Side::Server),
      server_(std::move(context)),
      options_(std::move(options)),
      tlsFactory_(factory) {
  if (!server_) throw std::invalid_argument("TLSProtocol: no context");
  proxy_.owner = this;
}

TLSProtocol::TLSProtocol(std::shared_ptr<const ClientContext> context,
                         std::shared_ptr<Protocol> wrapped, LayerOptions options,
                         TLSFactory* factory)
    : ProtocolWrapper(std::move(wrapped), factory),
      side_(Side::Client),
      client_(std::move(context)),
      options_(std::move(options)),
      tlsFactory_(factory) {
  if (!client_) throw std::invalid_argument("TLSProtocol: no context");
  proxy_.owner = this;
}

TLSProtocol::~TLSProtocol() {
  if (timeout_.active()) timeout_.cancel();
  if (flushCall_.active()) flushCall_.cancel();
  if (drainCall_.active()) drainCall_.cancel();
  if (producer_ != nullptr) linkProducer(*producer_, nullptr);
  if (ssl_ != nullptr) SSL_free(ssl_);
}

template <class F>
void TLSProtocol::callWrapped(F&& fn) {
  {
    Scope scope(*this);
    fn();
  }
  if (depth_ == 0) flushOutput();
}

void TLSProtocol::setUp() {
  ERR_clear_error();
  SSL_CTX* ctx = side_ == Side::Server ? server_->ctx_ : client_->ctx_;
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr) throw std::runtime_error("tls: SSL_new failed: " + openSSLErrors());
  SSL_set_app_data(ssl_, this);
  BIO* bio = BIO_new(BioAccess::method());
  if (bio == nullptr) throw std::runtime_error("tls: BIO_new failed: " + openSSLErrors());
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);
  if (side_ == Side::Server) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  const std::string& name = options_.serverName;
  bool ip = isIPAddress(name);
  if (!name.empty() && !ip) SSL_set_tlsext_host_name(ssl_, name.c_str());
  if (client_->verifyPeer()) {
    // Without a name there is nothing to check the certificate against but the chain: refuse
    // rather than accept any certificate a CA signed for anyone.
    if (name.empty()) {
      throw std::invalid_argument("tls: a verifying client needs the server's name");
    }
    if (ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
    } else {
      SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(ssl_, name.c_str());
    }
  }
  if (client_->resume_) {
    sessionKey_ = name + "|" + getPeer().toString();
    if (SSL_SESSION* s = client_->takeSession(sessionKey_)) {
      SSL_set_session(ssl_, s);
      SSL_SESSION_free(s);
    }
  }
}

void TLSProtocol::connectionMade() {
  started_ = true;
  setUp();
  if (options_.alreadyConnected) {
    wrappedConnected_ = true;
    wrapped().rebindTransport(this);
  }
  if (options_.clock != nullptr && options_.handshakeTimeout > 0) {
    timeout_ = options_.clock->callLater(options_.handshakeTimeout, [this] {
      fail(Failure::of(HandshakeError(
          HandshakeError::Kind::Timeout,
          "not finished within " + std::to_string(options_.handshakeTimeout) + " s")));
      transport()->abortConnection();
    });
  }
  pump();  // the client's ClientHello
}

void TLSProtocol::dataReceived(std::string_view data) {
  if (lost_ || failed_) return;
  if (!stash_.empty()) {
    stash_.append(data);
    in_ = stash_;
  } else {
    in_ = data;
  }
  pump();
  // Keep what OpenSSL did not take (only while paused, or closing).
  if (in_.empty()) {
    stash_.clear();
  } else if (!stash_.empty() && in_.data() >= stash_.data() &&
             in_.data() < stash_.data() + stash_.size()) {
    stash_.erase(0, static_cast<size_t>(in_.data() - stash_.data()));
  } else {
    stash_.assign(in_);
  }
  in_ = {};
}

void TLSProtocol::pump() {
  if (ssl_ == nullptr || failed_ || lost_) return;
  if (!handshakeDone_) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
      fail(errorFromOpenSSL(e, true));
      return;
    }
    handshakeSucceeded();
  }
  readRecords();
}

void TLSProtocol::readRecords() {
  bool own = tPlainBusy;
  char* buf;
  if (own) {
    if (!ownPlain_) ownPlain_.reset(new char[kRecord]);
    buf = ownPlain_.get();
  } else {
    buf = tPlain;
    tPlainBusy = true;
  }
  struct Release {
    bool own;
    TLSProtocol* self;
    ~Release() {
      if (!own) tPlainBusy = false;
      self->plain_ = nullptr;
    }
  } release{own, this};
  plain_ = buf;
  while (!paused_ && !closing_ && !peerClosed_ && !failed_ && !lost_) {
    ERR_clear_error();
    int n = SSL_read(ssl_, buf, static_cast<int>(kRecord));
    if (n > 0) {
      std::string_view data(buf, static_cast<size_t>(n));
      callWrapped([&] { wrapped().dataReceived(data); });
      continue;
    }
    int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      closeNotifyReceived();
      break;
    }
    fail(errorFromOpenSSL(e, false));
    break;
  }
}

void TLSProtocol::handshakeSucceeded() {
  handshakeDone_ = true;
  if (timeout_.active()) timeout_.cancel();
  if (!wrappedConnected_) {
    wrappedConnected_ = true;
    callWrapped([this] { ProtocolWrapper::connectionMade(); });
  }
  std::vector<Deferred<void>> waiters = std::move(waiters_);
  for (auto& d : waiters) callWrapped([&] { d.callback(); });
  flushOutput();
  if (lost_ || failed_) return;
  // Closing was asked for during the handshake.
  if (closing_ && !sentShutdown_) {
    shutdownTLS();
    transport()->loseConnection();
  } else if (writeClosed_ && !sentShutdown_) {
    shutdownTLS();
    transport()->loseWriteConnection();
  }
}

void TLSProtocol::closeNotifyReceived() {
  peerClosed_ = true;
  if (IHalfCloseableProtocol* h = wrapped().halfCloseable()) {
    callWrapped([h] { h->readConnectionLost(); });
  } else {
    loseConnection();  // answers with close_notify, then closes
  }
}

void TLSProtocol::readConnectionLost() {
  // The transport's EOF. After close_notify it ends nothing new; without one, what arrived
  // may have been cut short.
  if (peerClosed_ || lost_) return;
  if (!handshakeDone_) {
    fail(Failure::of(HandshakeError(HandshakeError::Kind::Closed,
                                    "the peer closed the connection during the handshake")));
  } else {
    fail(Failure::of(TruncatedError()));
  }
}

IHalfCloseableProtocol* TLSProtocol::halfCloseable() {
  return wrapped().halfCloseable() != nullptr ? this : nullptr;
}

void TLSProtocol::connectionLost(const Failure& reason) {
  lost_ = true;
  if (timeout_.active()) timeout_.cancel();
  if (flushCall_.active()) flushCall_.cancel();
  if (drainCall_.active()) drainCall_.cancel();
  Failure why = reason;
  if (failed_) {
    why = failure_;
  } else if (!handshakeDone_ && started_) {
    why = reason.check<ConnectionDone>()
              ? Failure::of(HandshakeError(HandshakeError::Kind::Closed,
                                           "the peer closed the connection during the handshake"))
              : reason;
  } else if (reason.check<ConnectionDone>() && !peerClosed_ && !sentShutdown_) {
    why = Failure::of(TruncatedError());
  }
  std::vector<Deferred<void>> waiters = std::move(waiters_);
  if (!handshakeDone_) {
    for (auto& d : waiters) d.errback(why);
  }
  if (tlsFactory_ != nullptr && side_ == Side::Client) {
    tlsFactory_->connectionEnded(why, wrappedConnected_);
  }
  if (wrappedConnected_) {
    ProtocolWrapper::connectionLost(why);
  } else if (side_ == Side::Server) {
    log::info("tls", "TLS handshake with " + getPeer().toString() + " failed: " + why.toString());
  }
}

// ---- writing ----

void TLSProtocol::write(std::string_view data) {
  if (data.empty() || closing_ || writeClosed_ || lost_ || failed_ || !started_) return;
  if (!handshakeDone_) {
    // Waits for the handshake: bounded as the transport's own buffer is.
    size_t cap = writeBufferLimits().hardCap;
    if (cap != WriteBufferLimits::kNoLimit && pendingOutput() + data.size() > cap) {
      fail(Failure::of(WriteBufferFullError(pendingOutput() + data.size(), cap)));
      transport()->abortConnection();
      return;
    }
  } else if (depth_ == 0 && options_.clock == nullptr) {
    flushOutput();
    encrypt(data);
    return;
  }
  if (pendingOutput() == 0 && plain_ != nullptr && data.data() >= plain_ &&
      data.data() + data.size() <= plain_ + kRecord) {
    outView_ = data;  // an echo of what is being delivered: encrypted from there, no copy
  } else {
    if (!outView_.empty()) {
      out_.assign(outView_);
      outView_ = {};
    }
    out_.append(data);
  }
  if (!handshakeDone_) return;
  // Whole records go at once, callback or not: nothing more can join them, and the peer starts
  // on them while the callback goes on (a 64 KiB echo leaves as four records, the first one
  // before the last is decrypted). What is left waits for the callback's end, or the loop's.
  if (pendingOutput() >= kRecord) encryptPending(pendingOutput() - pendingOutput() % kRecord);
  if (depth_ == 0 && pendingOutput() > 0) scheduleFlush();
}

void TLSProtocol::writeSequence(std::span<const std::string_view> data) {
  {
    Scope scope(*this);  // one record for the lot
    for (auto d : data) write(d);
  }
  if (depth_ > 0 || !handshakeDone_) return;
  if (options_.clock != nullptr) {
    scheduleFlush();
  } else {
    flushOutput();
  }
}

void TLSProtocol::scheduleFlush() {
  if (flushScheduled_) return;
  flushScheduled_ = true;
  flushCall_ = options_.clock->callLater(0, [this] {
    flushScheduled_ = false;
    flushOutput();
  });
}

void TLSProtocol::flushOutput(bool now) {
  size_t n = pendingOutput();
  if (!now && depth_ > 0) n -= n % kRecord;  // the callback may still add to the last record
  encryptPending(n);
}

void TLSProtocol::encryptPending(size_t n) {
  if (n == 0 || !handshakeDone_ || lost_ || failed_ || sentShutdown_) return;
  // Taken out first: encrypting may re-enter write (a producer the transport pauses).
  if (!outView_.empty()) {  // out_ is empty while a view is held
    std::string_view p = outView_.substr(0, n);
    outView_.remove_prefix(p.size());
    encrypt(p);
    return;
  }
  std::string data;
  data.swap(out_);
  encrypt(std::string_view(data).substr(0, n));
  if (n < data.size()) {
    // The tail (less than a record) goes back before anything written meanwhile.
    data.erase(0, n);
    data.append(out_);
    out_.swap(data);
  } else if (out_.empty() && data.capacity() <= kKeepBuffer) {
    data.clear();
    out_.swap(data);  // keep the buffer
  }
}

void TLSProtocol::encrypt(std::string_view data) {
  while (!data.empty() && !failed_) {
    ERR_clear_error();
    int n = SSL_write(ssl_, data.data(), static_cast<int>(std::min(data.size(), size_t{INT_MAX})));
    if (n <= 0) {
      fail(errorFromOpenSSL(SSL_get_error(ssl_, n), false));
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void TLSProtocol::shutdownTLS() {
  flushOutput(true);  // even inside a callback: what it wrote goes before close_notify
  if (sentShutdown_ || ssl_ == nullptr || failed_) return;
  sentShutdown_ = true;
  if (flushCall_.active()) flushCall_.cancel();
  flushScheduled_ = false;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // writes close_notify through the BIO
  ERR_clear_error();
}

void TLSProtocol::loseConnection() {
  if (closing_ || lost_) return;
  closing_ = true;
  if (!handshakeDone_) {
    if (!started_) transport()->loseConnection();
    return;  // handshakeSucceeded closes, with what was written
  }
  shutdownTLS();
  transport()->loseConnection();
}

void TLSProtocol::abortConnection() {
  if (lost_) return;
  closing_ = true;
  transport()->abortConnection();
}

void TLSProtocol::loseWriteConnection() {
  if (writeClosed_ || closing_ || lost_) return;
  writeClosed_ = true;
  if (!handshakeDone_) return;  // handshakeSucceeded does it
  shutdownTLS();
  transport()->loseWriteConnection();
}

bool TLSProtocol::disconnecting() const {
  return closing_ || lost_ || failed_ || transport()->disconnecting();
}

size_t TLSProtocol::bufferedSize() const { return transport()->bufferedSize() + pendingOutput(); }

void TLSProtocol::fail(Failure reason) {
  if (failed_ || lost_) return;
  failed_ = true;
  closing_ = true;
  failure_ = std::move(reason);
  if (flushCall_.active()) flushCall_.cancel();
  if (timeout_.active()) timeout_.cancel();
  // OpenSSL wrote its alert (if any) through the BIO already: it goes out, then the close.
  transport()->loseConnection();
}

// ---- flow control ----

void TLSProtocol::pauseProducing() {
  paused_ = true;
  transport()->pauseProducing();
}

void TLSProtocol::resumeProducing() {
  if (!paused_) return;
  paused_ = false;
  transport()->resumeProducing();
  // Records that arrived before the pause are still here: deliver them from the loop.
  if (!stash_.empty() || (ssl_ != nullptr && SSL_has_pending(ssl_) == 1)) scheduleDrain();
}

void TLSProtocol::scheduleDrain() {
  if (options_.clock == nullptr || drainCall_.active()) return;
  drainCall_ = options_.clock->callLater(0, [this] {
    if (paused_ || lost_) return;
    dataReceived({});
  });
}

void TLSProtocol::registerProducer(IProducer* producer, bool streaming) {
  if (producer_ != nullptr) {
    throw std::logic_error("registerProducer: a producer is already registered");
  }
  linkProducer(*producer, this);
  producer_ = producer;
  try {
    transport()->registerProducer(&proxy_, streaming);
  } catch (...) {
    producer_ = nullptr;
    linkProducer(*producer, nullptr);
    throw;
  }
}

void TLSProtocol::unregisterProducer() {
  if (producer_ == nullptr) return;
  IProducer* p = producer_;
  producer_ = nullptr;
  linkProducer(*p, nullptr);
  if (transport()->producer() == &proxy_) transport()->unregisterProducer();
}

void TLSProtocol::ProducerProxy::resumeProducing() {
  if (IProducer* p = owner->producer_) owner->callWrapped([p] { p->resumeProducing(); });
}

void TLSProtocol::ProducerProxy::pauseProducing() {
  if (IProducer* p = owner->producer_) p->pauseProducing();
}

void TLSProtocol::ProducerProxy::stopProducing() {
  if (IProducer* p = owner->producer_) {
    owner->producer_ = nullptr;
    linkProducer(*p, nullptr);
    p->stopProducing();
  }
}

// ---- what the protocol can ask ----

Deferred<void> TLSProtocol::whenHandshakeDone() {
  if (handshakeDone_) return succeed();
  if (failed_) return twist::fail<void>(failure_);
  if (lost_) return twist::fail<void>(Failure::of(ConnectionLost("TLS: the connection has ended")));
  waiters_.emplace_back();
  return waiters_.back();
}

std::optional<Certificate> TLSProtocol::getPeerCertificate() const {
  if (ssl_ == nullptr) return std::nullopt;
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (cert == nullptr) return std::nullopt;
  return Certificate(cert);
}

std::string TLSProtocol::negotiatedProtocol() const {
  if (ssl_ == nullptr) return {};
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return data == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(data), len);
}

std::string TLSProtocol::version() const {
  return ssl_ == nullptr || !handshakeDone_ ? std::string() : SSL_get_version(ssl_);
}

std::string TLSProtocol::cipher() const {
  const char* name = ssl_ == nullptr || !handshakeDone_ ? nullptr : SSL_get_cipher_name(ssl_);
  return name == nullptr ? std::string() : name;
}

bool TLSProtocol::sessionReused() const { return ssl_ != nullptr && SSL_session_reused(ssl_); }

std::string TLSProtocol::serverName() const {
  if (ssl_ == nullptr) return {};
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name == nullptr ? std::string() : name;
}

// ---- errors from OpenSSL ----

Failure TLSProtocol::errorFromOpenSSL(int sslError, bool handshaking) {
  unsigned long e = ERR_peek_error();
  int reason = ERR_GET_REASON(e);
  std::string detail =
      sslError == SSL_ERROR_SYSCALL && e == 0 ? "the transport failed" : openSSLErrors();
  using HK = HandshakeError::Kind;
  using CK = CertificateError::Kind;
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    long v = SSL_get_verify_result(ssl_);
    CK kind = CK::Other;
    switch (v) {
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        kind = CK::UnknownIssuer;
        break;
      case X509_V_ERR_CERT_HAS_EXPIRED:
        kind = CK::Expired;
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID:
        kind = CK::NotYetValid;
        break;
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        kind = CK::HostnameMismatch;
        break;
      default:
        break;
    }
    return Failure::of(CertificateError(kind, v, X509_verify_cert_error_string(v)));
  }
  if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    return Failure::of(CertificateError(CK::NoCertificate, 0,
                                        "the peer sent no certificate, and one is required"));
  }
  if (!handshaking) return Failure::of(TLSError("TLS error: " + detail));
  HK kind = HK::Other;
  switch (reason) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
      kind = HK::ProtocolVersion;
      break;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_CIPHERS_AVAILABLE:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
      kind = HK::NoSharedCipher;
      break;
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
      kind = HK::NoApplicationProtocol;
      break;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_UNEXPECTED_MESSAGE:
    case SSL_R_UNEXPECTED_RECORD:
    case SSL_R_LENGTH_MISMATCH:
    case SSL_R_BAD_PACKET_LENGTH:
      kind = HK::NotTLS;
      break;
    default:
      // Alerts from the peer: SSL_R_SSLV3_ALERT_* and SSL_R_TLSV1_ALERT_* (1000 + alert).
      if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
        kind = HK::PeerAlert;
      }
      break;
  }
  return Failure::of(HandshakeError(kind, detail));
}

// ---- TLSFactory ----

TLSFactory::TLSFactory(std::shared_ptr<Factory> wrapped,
                       std::shared_ptr<const ServerContext> context, LayerOptions options)
    : WrappingFactory(std::move(wrapped)),
      server_(std::move(context)),
      options_(std::move(options)) {
  if (!server_) throw std::invalid_argument("TLSFactory: no context");
}

TLSFactory::TLSFactory(std::shared_ptr<Factory> wrapped,
                       std::shared_ptr<const ClientContext> context, LayerOptions options)
    : WrappingFactory(std::move(wrapped)),
      client_(std::move(context)),
      options_(std::move(options)) {
  if (!client_) throw std::invalid_argument("TLSFactory: no context");
}

std::shared_ptr<ProtocolWrapper> TLSFactory::wrap(std::shared_ptr<Protocol> wrapped,
                                                  const Address&) {
  if (server_) return std::make_shared<TLSProtocol>(server_, std::move(wrapped), options_, this);
  return std::make_shared<TLSProtocol>(client_, std::move(wrapped), options_, this);
}

void TLSFactory::clientConnectionLost(IConnector& connector, const Failure& reason) {
  // The layer's connectionLost ran just before this, on the same connection: the wrapped
  // factory hears the reason its protocol heard (a TLS error, not the socket's clean close).
  if (!ended_) {
    WrappingFactory::clientConnectionLost(connector, reason);
    return;
  }
  auto [why, connected] = std::move(*ended_);
  ended_.reset();
  if (connected) {
    WrappingFactory::clientConnectionLost(connector, why);
  } else {
    WrappingFactory::clientConnectionFailed(connector, why);
  }
}

// ---- listenSSL, connectSSL, startTLS ----

std::shared_ptr<IListeningPort> listenSSL(IReactorTCP& tcp, IReactorTime& clock, uint16_t port,
                                          std::shared_ptr<Factory> factory,
                                          std::shared_ptr<const ServerContext> context,
                                          const ListenSSLOptions& options) {
  auto wrapping = std::make_shared<TLSFactory>(
      std::move(factory), std::move(context),
      LayerOptions{.clock = &clock, .handshakeTimeout = options.handshakeTimeout});
  return tcp.listenTCP(port, std::move(wrapping),
                       {.interface = options.interface,
                        .backlog = options.backlog,
                        .reusePort = options.reusePort,
                        .ipv6Only = options.ipv6Only});
}

std::shared_ptr<IConnector> connectSSL(IReactorTCP& tcp, IReactorTime& clock, std::string_view host,
                                       uint16_t port, std::shared_ptr<ClientFactory> factory,
                                       std::shared_ptr<const ClientContext> context,
                                       const ConnectSSLOptions& options) {
  std::string name = options.serverName.empty() ? std::string(host) : options.serverName;
  auto wrapping =
      std::make_shared<TLSFactory>(std::move(factory), std::move(context),
                                   LayerOptions{.clock = &clock,
                                                .handshakeTimeout = options.handshakeTimeout,
                                                .serverName = std::move(name)});
  return tcp.connectTCP(host, port, std::move(wrapping),
                        {.timeout = options.timeout, .bindAddress = options.bindAddress});
}

namespace {
template <class Context>
Deferred<void> insertTLS(Protocol& protocol, std::shared_ptr<const Context> context,
                         LayerOptions options) {
  ITransport* t = protocol.transport();
  if (t == nullptr || t->disconnecting()) {
    return fail<void>(Failure::of(ConnectionLost("startTLS: the connection is closing")));
  }
  std::shared_ptr<TLSProtocol> layer;
  options.alreadyConnected = true;
  t->insertLayer([&](std::shared_ptr<Protocol> p) {
    layer = std::make_shared<TLSProtocol>(std::move(context), std::move(p), std::move(options));
    return layer;
  });
  return layer->whenHandshakeDone();
}
}  // namespace

Deferred<void> startTLS(Protocol& protocol, std::shared_ptr<const ServerContext> context,
                        IReactorTime* clock, double handshakeTimeout) {
  if (!context) throw std::invalid_argument("startTLS: no context");
  return insertTLS(protocol, std::move(context),
                   LayerOptions{.clock = clock, .handshakeTimeout = handshakeTimeout});
}

Deferred<void> startTLS(Protocol& protocol, std::shared_ptr<const ClientContext> context,
                        std::string serverName, IReactorTime* clock, double handshakeTimeout) {
  if (!context) throw std::invalid_argument("startTLS: no context");
  if (context->verifyPeer() && serverName.empty()) {
    throw std::invalid_argument("startTLS: a verifying client needs the server's name");
  }
  return insertTLS(protocol, std::move(context),
                   LayerOptions{.clock = clock,
                                .handshakeTimeout = handshakeTimeout,
                                .serverName = std::move(serverName)});
}

}  // namespace twist::tls
