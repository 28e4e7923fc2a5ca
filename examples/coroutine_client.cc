// The echo client written with C++20 coroutines: connect, send a line, co_await the reply (with
// a timeout), for each argument. Twisted users know this shape as inlineCallbacks.
//   coroutine_client --host 127.0.0.1 --port 8000 --timeout 5 hello world
#include <iostream>
#include <string>

#include "examples/flags.h"
#include "twist/reactor/deferred.h"
#include "twist/reactor/endpoints.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/react.h"
#include "twist/reactor/reactor.h"
#include "twist/reactor/task.h"

namespace {

// Hands out received lines through Deferreds.
class LineClient : public twist::Protocol {
 public:
  // Fires with the next line (without its "\n"), or fails if the connection ends first.
  twist::Deferred<std::string> readLine() {
    waiting_ = twist::Deferred<std::string>();
    auto d = *waiting_;
    deliver();
    return d;
  }
  void dataReceived(std::string_view data) override {
    buffer_.append(data);
    deliver();
  }
  void connectionLost(const twist::Failure& reason) override {
    if (waiting_ && !waiting_->called()) waiting_->errback(reason);
  }

 private:
  void deliver() {
    auto nl = buffer_.find('\n');
    if (!waiting_ || waiting_->called() || nl == std::string::npos) return;
    std::string line = buffer_.substr(0, nl);
    buffer_.erase(0, nl + 1);
    waiting_->callback(std::move(line));
  }
  std::string buffer_;
  std::optional<twist::Deferred<std::string>> waiting_;
};

twist::Deferred<int> talk(twist::Reactor& reactor, twist::examples::ClientFlags flags) {
  try {
    // Shared with the connection: safe to use even if the server hangs up between two co_awaits
    // (its transport then ignores writes, and readLine fails with the reason).
    std::shared_ptr<LineClient> client = co_await twist::connectProtocol<LineClient>(
        reactor, flags.host, flags.port, {.timeout = flags.timeout});
    for (const auto& message : flags.args) {
      client->transport()->write(message + "\n");
      std::string reply = co_await twist::addTimeout(client->readLine(), reactor, flags.timeout);
      std::cout << reply << std::endl;
    }
    client->transport()->loseConnection();
    co_return 0;
  } catch (const std::exception& e) {
    std::cerr << "coroutine_client: " << e.what() << std::endl;
    co_return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseClientFlags(argc, argv);
  // Runs talk on a fresh reactor, stops when it ends, and makes its result the exit code.
  return twist::task::react([&](twist::Reactor& reactor) { return talk(reactor, flags); });
}
