// A tiny key-value server and a coroutine client, built in a workspace of its own against twist.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "protocols/basic.h"  // the user's own
#include "twist/protocols/basic.h"
#include "twist/protocols/testing/reactor_testing.h"
#include "twist/protocols/testing/string_transport.h"
#include "twist/reactor/endpoints.h"
#include "twist/reactor/react.h"
#include "twist/reactor/reactor.h"

namespace {

// "set KEY VALUE" -> "ok", "get KEY" -> the value or "none".
class KV : public twist::LineReceiver {
 public:
  explicit KV(std::map<std::string, std::string>* store) : store_(store) { setDelimiter("\n"); }
  void lineReceived(std::string_view line) override {
    std::string l(line);
    if (l.rfind("set ", 0) == 0) {
      auto space = l.find(' ', 4);
      (*store_)[l.substr(4, space - 4)] = l.substr(space + 1);
      sendLine("ok");
    } else if (l.rfind("get ", 0) == 0) {
      auto it = store_->find(l.substr(4));
      sendLine(it == store_->end() ? "none" : it->second);
    }
  }

 private:
  std::map<std::string, std::string>* store_;
};

class Client : public twist::LineReceiver {
 public:
  Client() { setDelimiter("\n"); }
  twist::Deferred<std::string> ask(const std::string& line) {
    reply_ = twist::Deferred<std::string>();
    sendLine(line);
    return *reply_;
  }
  void lineReceived(std::string_view line) override {
    if (reply_) std::exchange(reply_, std::nullopt)->callback(std::string(line));
  }

 private:
  std::optional<twist::Deferred<std::string>> reply_;
};

TEST(Consumer, TheUsersOwnHeaderAndTwistsDoNotClash) {
  EXPECT_STREQ(consumer::greeting(), "kv");
  std::map<std::string, std::string> store;
  twist::StringTransport t;
  KV kv(&store);
  kv.makeConnection(&t);
  kv.dataReceived("set a 1\nget a\n");
  EXPECT_EQ(t.value(), "ok\n1\n");
}

TEST(Consumer, ServerAndCoroutineClientOverRealSockets) {
  std::map<std::string, std::string> store;
  int code = twist::task::react([&](twist::Reactor& reactor) -> twist::Deferred<int> {
    auto port = reactor.listenTCP(0, twist::Factory::forProtocol<KV>(&store),
                                  {.interface = "127.0.0.1"});
    auto client = co_await twist::connectProtocol<Client>(reactor, "127.0.0.1",
                                                          port->getHost().port(), {.timeout = 5});
    std::string set = co_await client->ask("set answer 42");
    std::string get = co_await client->ask("get answer");
    client->transport()->loseConnection();
    co_return set == "ok" && get == "42" ? 0 : 1;
  });
  EXPECT_EQ(code, 0);
  EXPECT_EQ(store["answer"], "42");
}

}  // namespace
