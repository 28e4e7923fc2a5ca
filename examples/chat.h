// The chat protocol of examples/chat_server.cc (also fed to a fuzzer): the first line a client
// sends is its name ("welcome, NAME", or an error if it is taken); later lines go to everyone
// else as "NAME: line"; "/who" lists the names; a line over 1024 bytes gets an error and the
// connection is closed.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "twist/protocols/basic.h"

namespace twist::examples {

class Chat;

// The room: who is connected, by name.
class ChatFactory : public twist::ServerFactory {
 public:
  std::shared_ptr<twist::Protocol> buildProtocol(const twist::Address&) override;
  std::map<std::string, Chat*> users;
};

class Chat : public twist::LineReceiver {
 public:
  static constexpr size_t kMaxLine = 1024;

  explicit Chat(ChatFactory& room) : room_(room) {
    setDelimiter("\n");  // nc sends "\n"; a "\r" before it is dropped below
    setMaxLength(kMaxLine);
  }

  void connectionMade() override {
    // Finds users whose host vanished (no FIN, no reset): probes after 60 s of silence.
    transport()->setTcpKeepAliveTimes(60, 10, 6);
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

inline std::shared_ptr<twist::Protocol> ChatFactory::buildProtocol(const twist::Address&) {
  return std::make_shared<Chat>(*this);
}

}  // namespace twist::examples
