// Micro-benchmarks (Google Benchmark) of the reactor's building blocks, each beside the nearest
// raw libevent equivalent where there is one:
//   bazel run -c opt //bench:micro_bench
#include <benchmark/benchmark.h>
#include <event2/event.h>

#include <atomic>
#include <thread>

#include "twist/reactor/clock.h"
#include "twist/reactor/deferred.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/failure.h"
#include "twist/reactor/reactor.h"

namespace {

twist::Reactor::Options quiet() {
  twist::Reactor::Options o;
  o.installSignalHandlers = false;
  return o;
}

// ---- timers ----

void BM_CallLaterCancel(benchmark::State& state) {
  twist::Reactor reactor(quiet());
  for (auto _ : state) {
    twist::DelayedCall d = reactor.callLater(60, [] {});
    d.cancel();
  }
}
BENCHMARK(BM_CallLaterCancel);

// With N other calls pending (the queue is an ordered set: log N).
void BM_CallLaterCancelWithPending(benchmark::State& state) {
  twist::Reactor reactor(quiet());
  std::vector<twist::DelayedCall> pending;
  for (int i = 0; i < state.range(0); ++i)
    pending.push_back(reactor.callLater(10 + i * 1e-3, [] {}));
  for (auto _ : state) {
    twist::DelayedCall d = reactor.callLater(30, [] {});
    d.cancel();
  }
}
BENCHMARK(BM_CallLaterCancelWithPending)->Arg(1000)->Arg(100000);

void BM_LibeventTimerNewAddDelFree(benchmark::State& state) {
  event_base* base = event_base_new();
  timeval tv{60, 0};
  for (auto _ : state) {
    event* e = event_new(
        base, -1, 0, [](evutil_socket_t, short, void*) {}, nullptr);
    event_add(e, &tv);
    event_del(e);
    event_free(e);
  }
  event_base_free(base);
}
BENCHMARK(BM_LibeventTimerNewAddDelFree);

void BM_LibeventTimerAddDel(benchmark::State& state) {
  event_base* base = event_base_new();
  event* e = event_new(
      base, -1, 0, [](evutil_socket_t, short, void*) {}, nullptr);
  timeval tv{60, 0};
  for (auto _ : state) {
    event_add(e, &tv);
    event_del(e);
  }
  event_free(e);
  event_base_free(base);
}
BENCHMARK(BM_LibeventTimerAddDel);

// callLater(0) that runs: schedule and run through the loop.
void BM_CallLaterZeroRun(benchmark::State& state) {
  twist::Reactor reactor(quiet());
  long ran = 0;
  for (auto _ : state) {
    reactor.callLater(0, [&ran] { ++ran; });
    reactor.iterate(0);
  }
  benchmark::DoNotOptimize(ran);
}
BENCHMARK(BM_CallLaterZeroRun);

void BM_LibeventActiveRun(benchmark::State& state) {
  event_base* base = event_base_new();
  long ran = 0;
  event* e = event_new(
      base, -1, 0, [](evutil_socket_t, short, void* a) { ++*static_cast<long*>(a); }, &ran);
  for (auto _ : state) {
    event_active(e, 0, 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
  }
  benchmark::DoNotOptimize(ran);
  event_free(e);
  event_base_free(base);
}
BENCHMARK(BM_LibeventActiveRun);

// The raw equivalent of callLater(0): a zero timeout through libevent's timer path, on a base
// with precise timers (as the Reactor's) and on a default one. event_active would run sooner
// but, re-armed from its own callback, would run again in the same pass and starve I/O.
void libeventZeroTimerRun(benchmark::State& state, bool precise) {
  event_config* cfg = event_config_new();
  if (precise) event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
  event_base* base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  long ran = 0;
  event* e = event_new(
      base, -1, 0, [](evutil_socket_t, short, void* a) { ++*static_cast<long*>(a); }, &ran);
  timeval zero{0, 0};
  for (auto _ : state) {
    event_add(e, &zero);
    event_base_loop(base, EVLOOP_NONBLOCK);
  }
  benchmark::DoNotOptimize(ran);
  event_free(e);
  event_base_free(base);
}
void BM_LibeventZeroTimerRunPrecise(benchmark::State& state) { libeventZeroTimerRun(state, true); }
void BM_LibeventZeroTimerRun(benchmark::State& state) { libeventZeroTimerRun(state, false); }
BENCHMARK(BM_LibeventZeroTimerRunPrecise);
BENCHMARK(BM_LibeventZeroTimerRun);

// ---- callFromThread ----

// One producer thread queues calls; the reactor thread runs them. Items/s is the throughput.
void BM_CallFromThread(benchmark::State& state) {
  const long batch = 100000;
  for (auto _ : state) {
    twist::Reactor reactor(quiet());
    long ran = 0;
    std::thread producer([&] {
      for (long i = 0; i < batch; ++i) reactor.callFromThread([&ran] { ++ran; });
    });
    while (ran < batch) reactor.iterate(0.01);
    producer.join();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_CallFromThread)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- Deferred ----

// A Deferred with N same-type callbacks, fired: the cost per link is time / N.
void BM_DeferredChain(benchmark::State& state) {
  const int links = static_cast<int>(state.range(0));
  for (auto _ : state) {
    twist::Deferred<int> d;
    for (int i = 0; i < links; ++i) d.addCallback([](int v) { return v + 1; });
    d.callback(0);
  }
  state.SetItemsProcessed(state.iterations() * links);
}
BENCHMARK(BM_DeferredChain)->Arg(1)->Arg(10)->Arg(100);

// Links added after the result: each runs at once.
void BM_DeferredAddToFired(benchmark::State& state) {
  twist::Deferred<int> d = twist::succeed(0);
  for (auto _ : state) d.addCallback([](int v) { return v + 1; });
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DeferredAddToFired);

// ---- coroutines ----

twist::Deferred<long> awaitFired(long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await twist::succeed(i);
  co_return sum;
}

void BM_CoroutineAwaitFired(benchmark::State& state) {
  const long n = 1000;
  for (auto _ : state) benchmark::DoNotOptimize(awaitFired(n));
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_CoroutineAwaitFired);

twist::Deferred<long> awaitPending(std::vector<twist::Deferred<long>>& ds) {
  long sum = 0;
  for (auto& d : ds) sum += co_await d;
  co_return sum;
}

// Suspends on each Deferred and is resumed when it fires.
void BM_CoroutineAwaitSuspend(benchmark::State& state) {
  const long n = 1000;
  for (auto _ : state) {
    std::vector<twist::Deferred<long>> ds(n);
    auto result = awaitPending(ds);
    for (long i = 0; i < n; ++i) ds[i].callback(i);
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_CoroutineAwaitSuspend);

}  // namespace

// What a connection's end costs for its reason: the prebuilt Failure and the two checks a
// protocol typically makes, beside making the Failure from a new exception each time.
void BM_CloseReasonPrebuilt(benchmark::State& state) {
  for (auto _ : state) {
    twist::Failure reason = twist::ConnectionDone::failure();
    benchmark::DoNotOptimize(reason.check<twist::ConnectionDone>());
    benchmark::DoNotOptimize(reason.check<twist::ConnectionLost>());
  }
}
BENCHMARK(BM_CloseReasonPrebuilt);

void BM_CloseReasonMadeEachTime(benchmark::State& state) {
  for (auto _ : state) {
    twist::Failure reason = twist::Failure::of(twist::ConnectionDone());
    benchmark::DoNotOptimize(reason.check<twist::ConnectionDone>());
    benchmark::DoNotOptimize(reason.check<twist::ConnectionLost>());
  }
}
BENCHMARK(BM_CloseReasonMadeEachTime);

BENCHMARK_MAIN();
