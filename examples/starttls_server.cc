// STARTTLS: a line protocol that upgrades its connection to TLS when the client asks, as SMTP,
// IMAP and XMPP do. Each line comes back marked with how it travelled ("plain: ..." or
// "tls: ..."); the line STARTTLS is answered "OK begin TLS" in the clear, and from the next byte
// on both sides speak TLS (the client waits for that answer before its ClientHello).
//
//   bazel run //examples:starttls_server -- --cert /tmp/cert.pem --key /tmp/key.pem
//   openssl s_client -quiet -starttls ... does not know this protocol; Python does:
//     python3 -c "import socket,ssl; s=socket.create_connection(('127.0.0.1',8025));
//       s.sendall(b'STARTTLS\r\n'); print(s.recv(100));
//       t=ssl.create_default_context(cafile='/tmp/cert.pem').wrap_socket(s,server_hostname='localhost');
//       t.sendall(b'hi\r\n'); print(t.recv(100))"
#include <iostream>

#include "examples/flags.h"
#include "twist/protocols/basic.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tls.h"

namespace {

class Upgradable : public twist::LineReceiver {
 public:
  Upgradable(twist::Reactor* reactor, std::shared_ptr<const twist::tls::ServerContext> context)
      : reactor_(reactor), context_(std::move(context)) {}

  void lineReceived(std::string_view line) override {
    if (line == "STARTTLS") {
      if (secure_) {
        sendLine("ERR already TLS");
        return;
      }
      sendLine("OK begin TLS");  // in the clear: written before the layer goes in
      secure_ = true;
      std::string peer = transport()->getPeer().toString();
      // Whatever came after STARTTLS in the clear is dropped, never read as if it had come
      // through TLS: a man in the middle could have added it (CVE-2011-0411, "STARTTLS command
      // injection"). A client must wait for the answer before its ClientHello (RFC 3207).
      if (std::string early = clearLineBuffer(); !early.empty()) {
        std::cout << peer << ": dropped " << early.size() << " bytes sent before the handshake"
                  << std::endl;
      }
      twist::tls::startTLS(*this, context_, reactor_)
          .addCallback([peer] { std::cout << peer << ": upgraded to TLS" << std::endl; })
          .addErrback([peer](const twist::Failure& f) {
            std::cout << peer << ": TLS failed: " << f.getErrorMessage() << std::endl;
          });
      return;
    }
    sendLine(std::string(secure_ ? "tls: " : "plain: ") + std::string(line));
  }

 private:
  twist::Reactor* reactor_;
  std::shared_ptr<const twist::tls::ServerContext> context_;
  bool secure_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv, {"--cert", "--key"}, 8025);
  if (flags.get("--cert").empty() || flags.get("--key").empty()) {
    std::cerr << "usage: " << argv[0] << " --cert CHAIN.pem --key KEY.pem [--port N]" << std::endl;
    return 2;
  }
  twist::Reactor reactor;
  std::shared_ptr<twist::IListeningPort> port;
  try {
    std::shared_ptr<const twist::tls::ServerContext> context =
        std::make_shared<twist::tls::ServerContext>(twist::tls::ServerOptions{
            .certificateChainFile = flags.get("--cert"), .privateKeyFile = flags.get("--key")});
    port = reactor.listenTCP(flags.port, twist::Factory::forProtocol<Upgradable>(&reactor, context),
                             {.interface = flags.interface});
  } catch (const std::exception& e) {
    std::cerr << e.what() << std::endl;
    return 1;
  }
  twist::examples::announceWhenRunning(reactor, port);
  reactor.run();
  return 0;
}
