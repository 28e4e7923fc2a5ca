// Public for transport writers; users call Reactor::listenUNIX / connectUNIX. UNIX stream
// sockets (Twisted's twisted.internet.unix): the listening side is a tcp::Port over a UNIX
// socket, the connections are tcp::Connections (as Twisted's unix.Server is a tcp.Server) that
// also pass file descriptors (IUNIXTransport), and the connecting side is a tcp::Connector aimed
// at a path. What is UNIX-only lives here: socket files, their locks, peer credentials.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "twist/reactor/interfaces.h"
#include "twist/transports/tcp_connector.h"
#include "twist/transports/tcp_port.h"

namespace twist::unixsock {

// Binds and listens on `path` (see IReactorUNIX::listenUNIX). Throws CannotListenError.
std::shared_ptr<tcp::Port> listen(ReactorBase& reactor, std::string_view path,
                                  std::shared_ptr<Factory> factory,
                                  const ListenUNIXOptions& options);

// Connects to `path` (see IReactorUNIX::connectUNIX).
std::shared_ptr<tcp::Connector> connect(ReactorBase& reactor, std::string_view path,
                                        std::shared_ptr<ClientFactory> factory,
                                        const ConnectUNIXOptions& options);

// The peer of a connected UNIX socket as the kernel saw it (SO_PEERCRED), or nothing when the
// socket cannot say.
std::optional<UNIXCredentials> peerCredentials(int fd);

// `address` (a UNIXAddress) with the credentials of the process at the other end of fd.
Address withPeerCredentials(Address address, int fd);

// True when no process holds "<path>.lock" (ListenUNIXOptions::wantPID): no server lives there.
bool unlocked(const std::string& path);

// A connection accepted on a UNIX socket.
class Server : public tcp::Server, public IUNIXTransport {
 public:
  Server(ReactorBase& reactor, int fd, std::shared_ptr<Protocol> protocol, Address host,
         Address peer)
      : tcp::Server(reactor, fd, std::move(protocol), std::move(host), std::move(peer),
                    "unix.Server") {}
  void sendFileDescriptor(int fd) override { sendDescriptor(fd); }
};

// A connection made by connectUNIX.
class Client : public tcp::Client, public IUNIXTransport {
 public:
  Client(ReactorBase& reactor, int fd, std::shared_ptr<Protocol> protocol, Address host,
         Address peer, tcp::Connector& connector)
      : tcp::Client(reactor, fd, std::move(protocol), std::move(host), std::move(peer), connector,
                    "unix.Client") {}
  void sendFileDescriptor(int fd) override { sendDescriptor(fd); }
};

}  // namespace twist::unixsock
