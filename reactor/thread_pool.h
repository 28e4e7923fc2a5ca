// Public. ThreadPool: worker threads for blocking work (twisted.python.threadpool). The reactor
// owns one (Reactor::getThreadPool), started on first use and stopped (joined) during shutdown.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "twist/reactor/function.h"

namespace twist {

// Thread safe. Threads are started on demand, up to maxThreads, and live until stop().
class ThreadPool {
 public:
  explicit ThreadPool(size_t maxThreads = 10);
  ~ThreadPool();  // stop()
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues fn to run on a worker thread. An exception escaping fn is logged. Throws
  // std::logic_error once the pool has stopped.
  void callInThread(UniqueFunction<void()> fn);
  // Lets queued work finish, then joins every worker. Idempotent. Must not be called from a
  // worker (std::logic_error).
  void stop();
  // Changes the most threads the pool may run (at least 1).
  void adjustPoolsize(size_t maxThreads);

  size_t maxThreads() const;
  size_t threads() const;  // started so far
  size_t queued() const;   // waiting for a worker
  bool stopped() const;

 private:
  void work();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<UniqueFunction<void()>> queue_;
  std::vector<std::thread> threads_;
  std::vector<std::thread::id> ids_;
  size_t idle_ = 0;
  size_t max_;
  bool stopping_ = false;
};

}  // namespace twist
