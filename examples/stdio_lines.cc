// A line protocol on stdin and stdout (StandardIO): every line comes back numbered; at the end
// of input it says how many there were and exits. Try it:
//   printf 'apple\nbanana\n' | bazel run //examples:stdio_lines
//   1: apple
//   2: banana
//   2 lines
// It is half-closeable: the end of stdin is not the end of the conversation, so the summary
// goes out after it. Interactive use works too (type lines, Ctrl-D to finish).
#include <string>

#include "twist/protocols/basic.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/stdio.h"

namespace {

class Numbered : public twist::LineReceiver, public twist::IHalfCloseableProtocol {
 public:
  explicit Numbered(twist::Reactor& reactor) : reactor_(reactor) { setDelimiter("\n"); }
  void lineReceived(std::string_view line) override {
    sendLine(std::to_string(++count_) + ": " + std::string(line));
  }
  void readConnectionLost() override {
    sendLine(std::to_string(count_) + (count_ == 1 ? " line" : " lines"));
    transport()->loseConnection();
  }
  void connectionLost(const twist::Failure&) override { reactor_.stop(); }

 private:
  twist::Reactor& reactor_;
  int count_ = 0;
};

}  // namespace

int main() {
  twist::Reactor reactor;
  auto io = twist::StandardIO::start(reactor, std::make_shared<Numbered>(reactor));
  reactor.run();
  return 0;
}
