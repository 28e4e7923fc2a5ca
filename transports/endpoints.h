// Public. Endpoints (Twisted's twisted.internet.endpoints): where to listen or connect, as a
// value made from a string, so that deploying a server elsewhere (another port, a UNIX socket,
// TLS, a socket systemd made) changes its configuration, not its code.
//
//   auto ep = twist::endpoints::serverFromString(reactor, "tcp:8000:interface=127.0.0.1");
//   auto port = ep->listen(factory);          // throws CannotListenError
//   auto c = twist::endpoints::clientFromString(reactor, "unix:/run/app.sock");
//   c->connect(clientFactory).addCallback(...);  // the protocol, once connected
//
// Server strings ("type:positional:key=value:..."; '\' escapes a ':' or '\' in a value):
//   tcp:PORT[:interface=ADDR][:backlog=N]          tcp6:PORT (interface defaults to "::")
//   ssl:PORT:privateKey=KEY.pem[:certKey=CERT.pem][:interface=][:backlog=]
//       (certKey defaults to privateKey: one PEM file holding both)
//   unix:PATH[:mode=660][:backlog=N][:lockfile=1]  (PATH "@name": the abstract namespace;
//       mode is octal; lockfile=1 is ListenUNIXOptions::wantPID)
//   systemd:domain=INET|INET6|UNIX:index=N         (the N-th socket systemd passed; LISTEN_FDS)
//   PORT                                           (a bare number: tcp:PORT)
// Client strings:
//   tcp:HOST:PORT[:timeout=S][:bindAddress=ADDR]   (or host=, port=)
//   ssl:HOST:PORT[:caFile=CA.pem][:certKey=][:privateKey=][:hostname=NAME][:timeout=S]
//       (also tls:; the server's certificate is always verified, against hostname or HOST)
//   unix:PATH[:timeout=S][:checkPID=1]             (or path=)
// A malformed string, an unknown type or key, or a bad value throws std::invalid_argument
// naming what is wrong and what is accepted.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "twist/reactor/deferred.h"
#include "twist/reactor/interfaces.h"

namespace twist {
class Reactor;
}  // namespace twist

namespace twist::endpoints {

// Somewhere to listen (Twisted's IStreamServerEndpoint). Unlike Twisted's, listen() is
// synchronous, as listenTCP is in twist: it returns the port or throws CannotListenError (for
// systemd: also when the socket is missing or of another family).
class IStreamServerEndpoint {
 public:
  virtual ~IStreamServerEndpoint() = default;
  virtual std::shared_ptr<IListeningPort> listen(std::shared_ptr<Factory> factory) = 0;
  // The string it was made from, for logs.
  virtual std::string describe() const = 0;
};

// Somewhere to connect to (Twisted's IStreamClientEndpoint). connect() fires with the protocol
// the factory built once its connectionMade has run, or fails with the connect (or TLS) error;
// cancelling it stops the attempt. The factory's protocol sees the connection through a thin
// wrapper (as in Twisted).
class IStreamClientEndpoint {
 public:
  virtual ~IStreamClientEndpoint() = default;
  virtual Deferred<std::shared_ptr<Protocol>> connect(std::shared_ptr<Factory> factory) = 0;
  virtual std::string describe() const = 0;
};

// An endpoint string taken apart: "unix:/x.sock:mode=660" is type "unix", positional
// {"/x.sock"}, keywords {mode: "660"}. Throws std::invalid_argument for an empty type or a
// dangling '\'.
struct Description {
  std::string type;
  std::vector<std::string> positional;
  std::map<std::string, std::string> keywords;
};
Description parse(std::string_view description);

// Makes an endpoint from a string (see above). The reactor must outlive it.
std::shared_ptr<IStreamServerEndpoint> serverFromString(Reactor& reactor,
                                                        std::string_view description);
std::shared_ptr<IStreamClientEndpoint> clientFromString(Reactor& reactor,
                                                        std::string_view description);

}  // namespace twist::endpoints
