#include "twist/transports/endpoints.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>

#include "twist/protocols/policies.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/prefork.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tls.h"

namespace twist::endpoints {

Description parse(std::string_view text) {
  Description d;
  std::vector<std::pair<std::string, size_t>> segments;  // text, where its first '=' is
  std::string cur;
  size_t eq = std::string::npos;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\') {
      if (++i == text.size()) {
        throw std::invalid_argument("endpoint '" + std::string(text) + "' ends with a lone '\\'");
      }
      cur += text[i];
    } else if (c == ':') {
      segments.emplace_back(std::move(cur), eq);
      cur.clear();
      eq = std::string::npos;
    } else {
      if (c == '=' && eq == std::string::npos) eq = cur.size();
      cur += c;
    }
  }
  segments.emplace_back(std::move(cur), eq);
  d.type = segments[0].first;
  if (d.type.empty())
    throw std::invalid_argument("endpoint '" + std::string(text) + "' has no type");
  for (size_t i = 1; i < segments.size(); ++i) {
    auto& [seg, at] = segments[i];
    if (at == std::string::npos) {
      d.positional.push_back(seg);
      continue;
    }
    std::string key = seg.substr(0, at);
    if (!d.keywords.emplace(key, seg.substr(at + 1)).second) {
      throw std::invalid_argument("endpoint '" + std::string(text) + "' gives " + key + " twice");
    }
  }
  return d;
}

namespace {

// Reads a Description's arguments by name, positional ones first, and refuses leftovers.
class Args {
 public:
  Args(const Description& d, std::string text, std::vector<std::string> names)
      : d_(d), text_(std::move(text)), names_(std::move(names)) {
    if (d_.positional.size() > names_.size()) {
      bad("too many positional arguments");
    }
    for (const auto& [k, v] : d_.keywords) {
      if (std::find(names_.begin(), names_.end(), k) == names_.end()) {
        bad("unknown argument '" + k + "'");
      }
    }
    for (size_t i = 0; i < d_.positional.size(); ++i) {
      if (d_.keywords.count(names_[i]) != 0) bad(names_[i] + " given twice");
    }
  }

  std::optional<std::string> get(const std::string& name) const {
    for (size_t i = 0; i < d_.positional.size(); ++i) {
      if (names_[i] == name) return d_.positional[i];
    }
    if (auto it = d_.keywords.find(name); it != d_.keywords.end()) return it->second;
    return std::nullopt;
  }
  std::string required(const std::string& name) const {
    auto v = get(name);
    if (!v || v->empty()) bad("no " + name + " given");
    return *v;
  }
  std::string str(const std::string& name, std::string fallback = "") const {
    return get(name).value_or(std::move(fallback));
  }
  long integer(const std::string& name, long fallback, long lo, long hi, int base = 10) const {
    auto v = get(name);
    if (!v) return fallback;
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(v->c_str(), &end, base);
    if (v->empty() || *end != '\0' || errno != 0 || n < lo || n > hi) {
      bad(name + "=" + *v + " is not a number from " + std::to_string(lo) + " to " +
          std::to_string(hi));
    }
    return n;
  }
  uint16_t port() const {
    if (!get("port")) bad("no port given");
    return static_cast<uint16_t>(integer("port", 0, 0, 65535));
  }
  double seconds(const std::string& name, double fallback) const {
    auto v = get(name);
    if (!v) return fallback;
    char* end = nullptr;
    double s = std::strtod(v->c_str(), &end);
    if (v->empty() || *end != '\0' || !std::isfinite(s) || s < 0) {
      bad(name + "=" + *v + " is not a number of seconds");
    }
    return s;
  }
  bool flag(const std::string& name) const {
    auto v = get(name);
    if (!v) return false;
    if (*v == "1" || *v == "true" || *v == "yes") return true;
    if (*v == "0" || *v == "false" || *v == "no") return false;
    bad(name + "=" + *v + " is not 1 or 0");
  }
  [[noreturn]] void bad(const std::string& why) const {
    std::string accepted;
    for (const auto& n : names_) accepted += (accepted.empty() ? "" : ", ") + n;
    throw std::invalid_argument("endpoint '" + text_ + "': " + why + " (" + d_.type +
                                " takes: " + accepted + ")");
  }

 private:
  const Description& d_;
  std::string text_;
  std::vector<std::string> names_;
};

class ServerEndpoint : public IStreamServerEndpoint {
 public:
  using Listen = std::function<std::shared_ptr<IListeningPort>(std::shared_ptr<Factory>)>;
  ServerEndpoint(std::string text, Listen listen)
      : text_(std::move(text)), listen_(std::move(listen)) {}
  std::shared_ptr<IListeningPort> listen(std::shared_ptr<Factory> factory) override {
    if (!factory) throw std::invalid_argument("listen needs a factory");
    return listen_(std::move(factory));
  }
  std::string describe() const override { return text_; }

 private:
  std::string text_;
  Listen listen_;
};

// Fires the endpoint's Deferred once the wrapped protocol's connectionMade has run, or with the
// failure of the attempt.
class NotifyingFactory : public WrappingFactory {
 public:
  NotifyingFactory(std::shared_ptr<Factory> wrapped, Deferred<std::shared_ptr<Protocol>> d)
      : WrappingFactory(std::move(wrapped)), d_(std::move(d)) {}

  void clientConnectionFailed(IConnector& connector, const Failure& reason) override {
    WrappingFactory::clientConnectionFailed(connector, reason);
    if (!d_.called()) d_.errback(reason);
  }
  void made(std::shared_ptr<Protocol> p) {
    if (!d_.called()) d_.callback(std::move(p));
  }

 protected:
  std::shared_ptr<ProtocolWrapper> wrap(std::shared_ptr<Protocol> wrapped,
                                        const Address&) override {
    return std::make_shared<Wrapper>(std::move(wrapped), this);
  }

 private:
  class Wrapper : public ProtocolWrapper {
   public:
    Wrapper(std::shared_ptr<Protocol> wrapped, NotifyingFactory* factory)
        : ProtocolWrapper(wrapped, factory), inner_(std::move(wrapped)), owner_(factory) {}
    void connectionMade() override {
      ProtocolWrapper::connectionMade();
      owner_->made(inner_);
    }

   private:
    std::shared_ptr<Protocol> inner_;
    NotifyingFactory* owner_;  // the wrapper's factory(), which it holds
  };
  Deferred<std::shared_ptr<Protocol>> d_;
};

class ClientEndpoint : public IStreamClientEndpoint {
 public:
  using Connect = std::function<std::shared_ptr<IConnector>(std::shared_ptr<ClientFactory>)>;
  ClientEndpoint(std::string text, Connect connect)
      : text_(std::move(text)), connect_(std::move(connect)) {}

  Deferred<std::shared_ptr<Protocol>> connect(std::shared_ptr<Factory> factory) override {
    if (!factory) throw std::invalid_argument("connect needs a factory");
    auto connector = std::make_shared<std::weak_ptr<IConnector>>();
    Deferred<std::shared_ptr<Protocol>> d([connector](Deferred<std::shared_ptr<Protocol>>& self) {
      // CancelledError first (as Twisted's), then the attempt stops; its UserError finds the
      // Deferred already fired.
      self.errback(CancelledError());
      if (auto c = connector->lock()) c->disconnect();  // connecting, or a TLS handshake
    });
    *connector = connect_(std::make_shared<NotifyingFactory>(std::move(factory), d));
    return d;
  }
  std::string describe() const override { return text_; }

 private:
  std::string text_;
  Connect connect_;
};

std::shared_ptr<IListeningPort> listenSystemd(Reactor& reactor, const std::string& text,
                                              const std::string& domain, long index,
                                              std::shared_ptr<Factory> factory) {
  std::vector<int> fds = prefork::listenFds();
  if (static_cast<size_t>(index) >= fds.size()) {
    throw CannotListenError("systemd", 0,
                            "'" + text + "': systemd passed " + std::to_string(fds.size()) +
                                " socket(s) (LISTEN_FDS), so there is no index " +
                                std::to_string(index));
  }
  int fd = fds[static_cast<size_t>(index)];
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int family = ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 ? ss.ss_family : -1;
  int want = domain == "INET" ? AF_INET : domain == "INET6" ? AF_INET6 : AF_UNIX;
  if (family != want) {
    throw CannotListenError(
        "systemd", 0, "'" + text + "': socket " + std::to_string(index) + " is not " + domain);
  }
  try {
    return reactor.adoptStreamPort(fd, std::move(factory));
  } catch (const std::invalid_argument& e) {
    throw CannotListenError("systemd", 0, "'" + text + "': " + e.what());
  }
}

}  // namespace

std::shared_ptr<IStreamServerEndpoint> serverFromString(Reactor& reactor,
                                                        std::string_view description) {
  std::string text(description);
  Description d = parse(description);
  if (d.positional.empty() && d.keywords.empty() && !d.type.empty() &&
      d.type.find_first_not_of("0123456789") == std::string::npos) {
    d.positional.push_back(d.type);  // a bare port number
    d.type = "tcp";
  }
  Reactor* r = &reactor;
  if (d.type == "tcp" || d.type == "tcp6") {
    Args a(d, text, {"port", "interface", "backlog"});
    ListenTCPOptions o{.interface = a.str("interface", d.type == "tcp6" ? "::" : ""),
                       .backlog = static_cast<int>(a.integer("backlog", 0, 0, 1 << 20))};
    uint16_t port = a.port();
    return std::make_shared<ServerEndpoint>(
        text, [r, port, o](std::shared_ptr<Factory> f) { return r->listenTCP(port, f, o); });
  }
  if (d.type == "ssl") {
    Args a(d, text, {"port", "privateKey", "certKey", "interface", "backlog"});
    uint16_t port = a.port();
    std::string key = a.required("privateKey");
    auto context = std::make_shared<tls::ServerContext>(
        tls::ServerOptions{.certificateChainFile = a.str("certKey", key), .privateKeyFile = key});
    tls::ListenSSLOptions o{.interface = a.str("interface"),
                            .backlog = static_cast<int>(a.integer("backlog", 0, 0, 1 << 20))};
    return std::make_shared<ServerEndpoint>(
        text, [r, port, context, o](std::shared_ptr<Factory> f) {
          return tls::listenSSL(*r, port, std::move(f), context, o);
        });
  }
  if (d.type == "unix") {
    Args a(d, text, {"address", "mode", "backlog", "lockfile"});
    std::string path = a.required("address");
    ListenUNIXOptions o{.mode = static_cast<unsigned>(a.integer("mode", 0666, 0, 07777, 8)),
                        .backlog = static_cast<int>(a.integer("backlog", 0, 0, 1 << 20)),
                        .wantPID = a.flag("lockfile")};
    return std::make_shared<ServerEndpoint>(
        text, [r, path, o](std::shared_ptr<Factory> f) { return r->listenUNIX(path, f, o); });
  }
  if (d.type == "systemd") {
    Args a(d, text, {"domain", "index"});
    std::string domain = a.required("domain");
    if (domain != "INET" && domain != "INET6" && domain != "UNIX") {
      a.bad("domain=" + domain + " is not INET, INET6 or UNIX");
    }
    long index = a.integer("index", 0, 0, 1023);
    if (!a.get("index")) a.bad("no index given");
    return std::make_shared<ServerEndpoint>(
        text, [r, text, domain, index](std::shared_ptr<Factory> f) {
          return listenSystemd(*r, text, domain, index, std::move(f));
        });
  }
  throw std::invalid_argument("endpoint '" + text + "': unknown type '" + d.type +
                              "' (servers: tcp, tcp6, ssl, unix, systemd)");
}

std::shared_ptr<IStreamClientEndpoint> clientFromString(Reactor& reactor,
                                                        std::string_view description) {
  std::string text(description);
  Description d = parse(description);
  Reactor* r = &reactor;
  if (d.type == "tcp") {
    Args a(d, text, {"host", "port", "timeout", "bindAddress"});
    std::string host = a.required("host");
    uint16_t port = a.port();
    ConnectTCPOptions o{.timeout = a.seconds("timeout", 30)};
    if (auto b = a.get("bindAddress")) o.bindAddress = std::make_pair(*b, uint16_t{0});
    return std::make_shared<ClientEndpoint>(text,
                                            [r, host, port, o](std::shared_ptr<ClientFactory> f) {
                                              return r->connectTCP(host, port, std::move(f), o);
                                            });
  }
  if (d.type == "ssl" || d.type == "tls") {
    Args a(d, text, {"host", "port", "caFile", "certKey", "privateKey", "hostname", "timeout"});
    std::string host = a.required("host");
    uint16_t port = a.port();
    std::string key = a.str("privateKey");
    auto context = std::make_shared<tls::ClientContext>(
        tls::ClientOptions{.caFile = a.str("caFile"),
                           .certificateChainFile = a.str("certKey", key),
                           .privateKeyFile = key});
    tls::ConnectSSLOptions o{.timeout = a.seconds("timeout", 30), .serverName = a.str("hostname")};
    return std::make_shared<ClientEndpoint>(
        text, [r, host, port, context, o](std::shared_ptr<ClientFactory> f) {
          return tls::connectSSL(*r, host, port, std::move(f), context, o);
        });
  }
  if (d.type == "unix") {
    Args a(d, text, {"path", "timeout", "checkPID"});
    std::string path = a.required("path");
    ConnectUNIXOptions o{.timeout = a.seconds("timeout", 30), .checkPID = a.flag("checkPID")};
    return std::make_shared<ClientEndpoint>(text, [r, path, o](std::shared_ptr<ClientFactory> f) {
      return r->connectUNIX(path, std::move(f), o);
    });
  }
  throw std::invalid_argument("endpoint '" + text + "': unknown type '" + d.type +
                              "' (clients: tcp, ssl, tls, unix)");
}

}  // namespace twist::endpoints
