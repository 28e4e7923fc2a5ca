// Parse throughput of the framers (Google Benchmark): LineReceiver and Int32StringReceiver fed
// 64 KiB chunks of 16 B, 128 B or 4 KiB messages, beside a memchr line splitter written here as
// the practical limit.
//   bazel run -c opt //bench:parse_bench
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "twist/protocols/basic.h"
#include "twist/protocols/testing/string_transport.h"

namespace {

constexpr size_t kChunk = 64 * 1024;

// `stream` cut into 64 KiB chunks.
std::vector<std::string> cut(const std::string& stream) {
  std::vector<std::string> chunks;
  for (size_t i = 0; i < stream.size(); i += kChunk) chunks.push_back(stream.substr(i, kChunk));
  return chunks;
}

// A stream of `size`-byte messages (payload + framing), cut into 64 KiB chunks.
std::vector<std::string> lineChunks(size_t size, size_t total) {
  std::string line(size - 2, 'x');
  line += "\r\n";
  std::string stream;
  while (stream.size() < total) stream += line;
  return cut(stream);
}

std::vector<std::string> int32Chunks(size_t size, size_t total) {
  std::string payload(size - 4, 'y');
  std::string msg;
  for (int i = 3; i >= 0; --i) msg += static_cast<char>((payload.size() >> (8 * i)) & 0xff);
  msg += payload;
  std::string stream;
  while (stream.size() < total) stream += msg;
  return cut(stream);
}

constexpr size_t kTotal = 8 << 20;

class CountLines : public twist::LineReceiver {
 public:
  size_t lines = 0, bytes = 0;
  void lineReceived(std::string_view line) override {
    ++lines;
    bytes += line.size();
  }
};

class CountStrings : public twist::Int32StringReceiver {
 public:
  size_t strings = 0, bytes = 0;
  void stringReceived(std::string_view s) override {
    ++strings;
    bytes += s.size();
  }
};

void report(benchmark::State& state, size_t totalBytes, size_t messages) {
  state.SetBytesProcessed(static_cast<int64_t>(totalBytes) * state.iterations());
  state.SetItemsProcessed(static_cast<int64_t>(messages) * state.iterations());
}

size_t totalSize(const std::vector<std::string>& chunks) {
  size_t n = 0;
  for (auto& c : chunks) n += c.size();
  return n;
}

void BM_LineReceiver(benchmark::State& state) {
  auto chunks = lineChunks(static_cast<size_t>(state.range(0)), kTotal);
  size_t lines = 0;
  for (auto _ : state) {
    twist::StringTransport t;
    CountLines p;
    p.makeConnection(&t);
    for (auto& c : chunks) p.dataReceived(c);
    lines = p.lines;
    benchmark::DoNotOptimize(p.bytes);
  }
  report(state, totalSize(chunks), lines);
}
BENCHMARK(BM_LineReceiver)->Arg(16)->Arg(128)->Arg(4096);

// The limit: find "\n" with memchr in each chunk, carry a partial line across chunks, hand each
// line (without "\r\n") to `sink`.
template <class Sink>
void splitLines(const std::vector<std::string>& chunks, Sink& sink) {
  std::string carry;
  for (auto& c : chunks) {
    const char* p = c.data();
    const char* end = p + c.size();
    if (!carry.empty()) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
      if (nl == nullptr) {
        carry.append(p, end);
        continue;
      }
      carry.append(p, nl);
      sink.line(std::string_view(carry).substr(0, carry.size() - 1));
      carry.clear();
      p = nl + 1;
    }
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
      if (nl == nullptr) {
        carry.assign(p, end);
        break;
      }
      sink.line(std::string_view(p, static_cast<size_t>(nl - p) - 1));
      p = nl + 1;
    }
  }
}

// Counts in place: the compiler inlines it, so this is the bare splitter.
struct InlineSink {
  size_t lines = 0, bytes = 0;
  void line(std::string_view l) {
    ++lines;
    bytes += l.size();
  }
};

// A callback the splitter cannot inline, as any splitter that serves a protocol has.
struct LineSink {
  virtual ~LineSink() = default;
  virtual void line(std::string_view l) = 0;
};
struct CountingSink : LineSink {
  size_t lines = 0, bytes = 0;
  void line(std::string_view l) override {
    ++lines;
    bytes += l.size();
  }
};

template <class Sink, class Base = Sink>
void benchSplitter(benchmark::State& state) {
  auto chunks = lineChunks(static_cast<size_t>(state.range(0)), kTotal);
  size_t lines = 0;
  for (auto _ : state) {
    Sink sink;
    splitLines<Base>(chunks, sink);
    lines = sink.lines;
    benchmark::DoNotOptimize(sink.bytes);
  }
  report(state, totalSize(chunks), lines);
}

void BM_MemchrSplitter(benchmark::State& state) { benchSplitter<InlineSink>(state); }
BENCHMARK(BM_MemchrSplitter)->Arg(16)->Arg(128)->Arg(4096);

void BM_MemchrSplitterWithCallback(benchmark::State& state) {
  benchSplitter<CountingSink, LineSink>(state);
}
BENCHMARK(BM_MemchrSplitterWithCallback)->Arg(16)->Arg(128)->Arg(4096);

void BM_Int32StringReceiver(benchmark::State& state) {
  auto chunks = int32Chunks(static_cast<size_t>(state.range(0)), kTotal);
  size_t strings = 0;
  for (auto _ : state) {
    twist::StringTransport t;
    CountStrings p;
    p.setMaxLength(1 << 20);
    p.makeConnection(&t);
    for (auto& c : chunks) p.dataReceived(c);
    strings = p.strings;
    benchmark::DoNotOptimize(p.bytes);
  }
  report(state, totalSize(chunks), strings);
}
BENCHMARK(BM_Int32StringReceiver)->Arg(16)->Arg(128)->Arg(4096);

}  // namespace

BENCHMARK_MAIN();
