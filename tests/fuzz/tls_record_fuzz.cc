// The TLS record path (transports/tls) on StringTransports, in three modes chosen by input byte 0:
//   0  the rest is what a client sends a server layer (a ClientHello, records, garbage), cut
//      into chunks seeded by byte 1;
//   1  the rest is what a server answers a client layer's ClientHello;
//   2  a real handshake between the two layers first, then the rest is a script: writes of
//      either side, deliveries cut anywhere, bytes flipped or injected into the ciphertext,
//      pauses, half-closes, closes and aborts.
// No crash, no sanitizer report, no leak; the wrapped protocol is connected only after a
// handshake, hears connectionLost exactly once, and (mode 2) receives a prefix of what the
// other side wrote, in order, whatever was done to the ciphertext.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "tests/fuzz/fuzz_util.h"
#include "twist/protocols/testing/string_transport.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/log.h"
#include "twist/transports/tls.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// A self-signed P-256 certificate for "localhost", made once per process (the fuzzer runs
// anywhere: no files from the repository), written where ServerContext can load it.
struct Certificate {
  std::string certFile, keyFile;
  Certificate() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:localhost");
    X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(x, key, EVP_sha256());
    certFile = write("cert", [&](FILE* f) { PEM_write_X509(f, x); });
    keyFile = write("key", [&](FILE* f) {
      PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    });
    X509_free(x);
    EVP_PKEY_free(key);
  }
  template <class F>
  static std::string write(const char* what, F f) {
    const char* tmp = std::getenv("TMPDIR");
    std::string path =
        std::string(tmp != nullptr ? tmp : "/tmp") + "/twist-fuzz-" + what + "-XXXXXX";
    int fd = mkstemp(path.data());
    check(fd >= 0);
    FILE* file = fdopen(fd, "w");
    f(file);
    std::fclose(file);
    return path;
  }
  ~Certificate() {
    unlink(certFile.c_str());
    unlink(keyFile.c_str());
  }
};

struct Contexts {
  Certificate cert;
  std::shared_ptr<const twist::tls::ServerContext> server =
      std::make_shared<twist::tls::ServerContext>(
          twist::tls::ServerOptions{.certificateChainFile = cert.certFile,
                                    .privateKeyFile = cert.keyFile,
                                    .alpn = {"h2", "http/1.1"}});
  std::shared_ptr<const twist::tls::ClientContext> client =
      std::make_shared<twist::tls::ClientContext>(
          twist::tls::ClientOptions{.caFile = cert.certFile, .alpn = {"http/1.1"}});
};

Contexts& contexts() {
  static Contexts c;
  return c;
}

// The wrapped protocol: what it heard, and the invariants of the dispatch order.
class Recorder : public twist::Protocol {
 public:
  void connectionMade() override {
    check(!made && !lost);
    auto* tls = twist::tls::tlsTransport(*this);
    check(tls != nullptr && tls->handshakeDone());
    made = true;
  }
  void dataReceived(std::string_view d) override {
    check(made && !lost);
    data.append(d);
  }
  void connectionLost(const twist::Failure&) override {
    check(!lost);
    lost = true;
  }
  bool made = false, lost = false;
  std::string data;
};

// One side: the wrapped protocol, its TLS layer and the StringTransport under it.
struct Side {
  template <class Context>
  explicit Side(const Context& context, twist::tls::LayerOptions options = {})
      : app(std::make_shared<Recorder>()),
        layer(std::make_shared<twist::tls::TLSProtocol>(context, app, std::move(options))) {
    layer->makeConnection(&wire);
  }
  // The transport under the layer went away (the layer asked for it, or the peer did).
  void end() {
    if (ended) return;
    ended = true;
    layer->connectionLost(twist::ConnectionDone::failure());
  }
  bool closing() const { return wire.loseConnectionCalled() || wire.abortConnectionCalled(); }
  std::string take() {
    std::string out = wire.value();
    wire.clear();
    return out;
  }
  twist::StringTransport wire;
  std::shared_ptr<Recorder> app;
  std::shared_ptr<twist::tls::TLSProtocol> layer;
  bool ended = false;
};

// Modes 0 and 1: `stream` from a peer nobody controls.
void hostilePeer(Side& side, std::string_view stream, uint8_t seed) {
  size_t pos = 0;
  for (size_t c : twist::fuzz::chunkSizes(stream.size(), seed)) {
    if (side.closing()) break;
    side.layer->dataReceived(stream.substr(pos, c));
    pos += c;
  }
  side.end();
  check(side.app->lost == side.app->made);
}

// Mode 2: a script over an established connection.
void script(std::string_view s) {
  Side server(contexts().server);
  Side client(contexts().client, {.serverName = "localhost"});
  for (int i = 0; i < 20 && !(server.wire.value().empty() && client.wire.value().empty()); ++i) {
    std::string toServer = client.take(), toClient = server.take();
    if (!toServer.empty()) server.layer->dataReceived(toServer);
    if (!toClient.empty()) client.layer->dataReceived(toClient);
  }
  check(server.app->made && client.app->made);
  check(client.layer->negotiatedProtocol() == "http/1.1");

  std::string sent[2];  // plaintext each side wrote: [0] by the client, [1] by the server
  Side* sides[2] = {&client, &server};
  size_t i = 0;
  auto next = [&]() -> uint8_t { return i < s.size() ? static_cast<uint8_t>(s[i++]) : 0; };
  while (i < s.size()) {
    uint8_t op = next();
    int who = op & 1;  // 0: the client acts, 1: the server
    Side& me = *sides[who];
    Side& peer = *sides[1 - who];
    switch ((op >> 1) & 7) {
      case 0:
      case 1: {  // me writes n plaintext bytes (up to 20 KiB: more than a record)
        size_t n = (static_cast<size_t>(next()) << 8 | next()) % (20 * 1024);
        std::string data(n, static_cast<char>('a' + sent[who].size() % 26));
        if (!me.app->lost) me.app->transport()->write(data);
        if (!me.app->lost && !me.layer->disconnecting()) sent[who] += data;
        break;
      }
      case 2:
      case 3: {  // deliver what `me` sent to the peer, cut at a point the script chooses
        std::string bytes = me.take();
        size_t cut = bytes.empty() ? 0 : next() * bytes.size() / 256;
        if (peer.ended) break;
        peer.layer->dataReceived(std::string_view(bytes).substr(0, cut));
        if (!peer.closing()) peer.layer->dataReceived(std::string_view(bytes).substr(cut));
        break;
      }
      case 4: {  // flip a bit of what `me` sent, or inject bytes from the script
        std::string bytes = me.take();
        uint8_t at = next(), len = next() & 15;
        if (!bytes.empty() && (at & 1)) {
          bytes[at * bytes.size() / 256] ^= static_cast<char>(1 << (len & 7));
        } else {
          bytes.append(s.substr(std::min(i, s.size()), len));
          i += len;
        }
        if (!peer.ended) peer.layer->dataReceived(bytes);
        break;
      }
      case 5: {  // me pauses or resumes reading
        bool pause = next() & 1;
        if (me.app->lost) break;
        if (pause) {
          me.app->transport()->pauseProducing();
        } else {
          me.app->transport()->resumeProducing();
        }
        break;
      }
      case 6: {  // me closes: cleanly, half, or abort
        uint8_t how = next() % 3;
        if (me.app->lost) break;
        if (how == 0) {
          me.app->transport()->loseConnection();
        } else if (how == 1) {
          me.app->transport()->loseWriteConnection();
        } else {
          me.app->transport()->abortConnection();
        }
        break;
      }
      default:  // the transport under `me` goes away (a reset, or its loseConnection is done)
        if (!me.ended) {
          me.end();
          if (!peer.ended) peer.end();
        }
    }
    for (int k = 0; k < 2; ++k) {
      // A layer that closed its transport: that transport is gone once its bytes went out.
      Side& side = *sides[k];
      if (side.closing() && side.wire.value().empty()) side.end();
    }
  }
  // Whatever is left: deliver it, then both transports end.
  for (int k = 0; k < 2; ++k) {
    Side& me = *sides[k];
    Side& peer = *sides[1 - k];
    std::string bytes = me.take();
    if (!peer.ended && !peer.closing() && !bytes.empty()) peer.layer->dataReceived(bytes);
  }
  server.end();
  client.end();
  for (int k = 0; k < 2; ++k) {
    check(sides[k]->app->lost);
    // What a side received is a prefix of what the other wrote: flipped or injected bytes
    // end the connection (AEAD), they never reach the protocol.
    const std::string& got = sides[k]->app->data;
    check(got.size() <= sent[1 - k].size());
    check(sent[1 - k].compare(0, got.size(), got) == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  twist::log::setMinimumLevel(twist::log::Level::Error);  // a refused handshake logs at info
  contexts();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  switch (data[0] % 3) {
    case 0: {
      Side server(contexts().server);
      hostilePeer(server, rest, data[1]);
      break;
    }
    case 1: {
      Side client(contexts().client, {.serverName = "localhost"});
      client.take();  // its ClientHello
      hostilePeer(client, rest, data[1]);
      break;
    }
    default:
      script(rest);
  }
  return 0;
}
