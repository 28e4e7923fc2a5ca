// A line-based chat. The first line a client sends is its name (the server answers
// "welcome, NAME", or refuses a name that is taken); every later line goes to everyone else as
// "NAME: line"; "/who" lists who is there. A line over the limit gets an error line and the
// connection is closed. Try it with two terminals running: nc 127.0.0.1 8000
#include <iostream>
#include <map>
#include <string>

#include "examples/flags.h"
#include "protocols/basic.h"
#include "reactor/errors.h"
#include "reactor/reactor.h"
#include "transports/tcp_port.h"

namespace {

class Chat;

// The room: who is connected, by name.
class ChatFactory : public twist::ServerFactory {
 public:
  std::unique_ptr<twist::Protocol> buildProtocol(const twist::Address&) override;
  std::map<std::string, Chat*> users;
};

class Chat : public twist::LineReceiver {
 public:
  static constexpr size_t kMaxLine = 1024;

  explicit Chat(ChatFactory& room) : room_(room) {
    setDelimiter("\n");  // nc sends "\n"; a "\r" before it is dropped below
    setMaxLength(kMaxLine);
  }

  void lineReceived(std::string_view line) override {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (name_.empty()) return chooseName(std::string(line));
    if (line == "/who") {
      std::string names;
      for (const auto& [name, _] : room_.users) names += (names.empty() ? "" : ", ") + name;
      return sendLine("users: " + names);
    }
    std::string message = name_ + ": " + std::string(line);
    for (const auto& [name, user] : room_.users) {
      if (user != this) user->sendLine(message);
    }
  }

  void lineLengthExceeded(std::string_view) override {
    sendLine("error: line too long (the limit is " + std::to_string(kMaxLine) + " bytes)");
    transport()->loseConnection();
  }

  void connectionLost(const twist::Failure&) override {
    if (!name_.empty()) room_.users.erase(name_);
  }

 private:
  void chooseName(std::string name) {
    if (name.empty()) return sendLine("error: send your name first");
    if (room_.users.count(name) != 0) {
      return sendLine("error: the name " + name + " is taken, choose another");
    }
    name_ = name;
    room_.users[name_] = this;
    sendLine("welcome, " + name_);
  }

  ChatFactory& room_;
  std::string name_;
};

std::unique_ptr<twist::Protocol> ChatFactory::buildProtocol(const twist::Address&) {
  return std::make_unique<Chat>(*this);
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv);
  twist::Reactor reactor;  // SIGINT and SIGTERM stop it
  std::shared_ptr<twist::Port> port;
  try {
    port = reactor.listenTCP(flags.port, std::make_shared<ChatFactory>(), 50, flags.interface);
  } catch (const twist::CannotListenError& e) {
    std::cerr << e.what() << std::endl;
    return 1;
  }
  reactor.callWhenRunning(
      [&] { std::cout << "listening on " << port->getHost().hostPort() << std::endl; });
  reactor.run();
  return 0;
}
