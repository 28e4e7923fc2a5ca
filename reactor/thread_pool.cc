#include "twist/reactor/thread_pool.h"

#include <algorithm>
#include <stdexcept>

#include "twist/reactor/failure.h"
#include "twist/reactor/log.h"

namespace twist {

ThreadPool::ThreadPool(size_t maxThreads) : max_(std::max<size_t>(1, maxThreads)) {}

ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::callInThread(UniqueFunction<void()> fn) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) throw std::logic_error("ThreadPool::callInThread after stop()");
  queue_.push_back(std::move(fn));
  if (idle_ == 0 && threads_.size() < max_) {
    threads_.emplace_back([this] { work(); });
    ids_.push_back(threads_.back().get_id());
  } else {
    wake_.notify_one();
  }
}

void ThreadPool::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    while (queue_.empty() && !stopping_) {
      ++idle_;
      wake_.wait(lock);
      --idle_;
    }
    if (queue_.empty()) return;  // stopping, and the queue is drained
    UniqueFunction<void()> fn = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    try {
      fn();
    } catch (...) {
      log::error("threadpool",
                 "Unhandled error in a thread-pool function: " + Failure::current().toString());
    }
    fn = nullptr;  // release what it captured before taking the lock again
    lock.lock();
  }
}

void ThreadPool::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (std::find(ids_.begin(), ids_.end(), std::this_thread::get_id()) != ids_.end()) {
      throw std::logic_error("ThreadPool::stop called from one of its own workers");
    }
    stopping_ = true;
    threads.swap(threads_);
  }
  wake_.notify_all();
  for (auto& t : threads) t.join();
}

void ThreadPool::adjustPoolsize(size_t maxThreads) {
  std::lock_guard<std::mutex> lock(mutex_);
  max_ = std::max<size_t>(1, maxThreads);
}

size_t ThreadPool::maxThreads() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return max_;
}
size_t ThreadPool::threads() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ids_.size();
}
size_t ThreadPool::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}
bool ThreadPool::stopped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stopping_;
}

}  // namespace twist
