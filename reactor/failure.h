// Public. Failure: an error travelling as a value, like twisted.python.failure.Failure.
// It wraps any exception (std::exception_ptr); connectionLost reasons are Failures.
#pragma once

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include "twist/reactor/cxx20.h"

namespace twist {

// Holds one exception. Cheap to copy (shares the exception). Immutable once made, so a Failure
// (and the prebuilt ones, such as ConnectionDone::failure()) may be read from any thread.
// check<E>() and get<E>() for an exception type E cost a dynamic_cast, not a rethrow: the
// object is located once, when the Failure is made.
class Failure {
 public:
  // An empty Failure holds no exception; check<E>() is false for every E.
  Failure() = default;
  explicit Failure(std::exception_ptr e);

  // Wraps a copy of `e`: ConnectionDone::failure().
  template <class E>
  static Failure of(E e) {
    return Failure(std::make_exception_ptr(std::move(e)));
  }

  // Wraps the exception being handled; call only inside a catch block.
  static Failure current() { return Failure(std::current_exception()); }

  // True when the held exception is an E (or derives from E).
  template <class E>
  bool check() const {
    return get<E>() != nullptr;
  }

  // The held exception as an E, or nullptr when it is not one. Valid while this Failure lives.
  template <class E>
  const E* get() const {
    if (!error_) return nullptr;
    if constexpr (std::is_base_of_v<std::exception, E>) {
      return object_ == nullptr ? nullptr : dynamic_cast<const E*>(object_);
    } else {
      try {
        std::rethrow_exception(error_);
      } catch (const E& e) {
        return &e;
      } catch (...) {
        return nullptr;
      }
    }
  }

  // Does nothing when the held exception is an E; otherwise rethrows it (Twisted's trap).
  template <class E>
  void trap() const {
    if (!check<E>()) raise();
  }

  // Rethrows the held exception (std::logic_error if empty).
  [[noreturn]] void raise() const;

  // what() of the held exception, or a description when it is not a std::exception.
  std::string getErrorMessage() const;

  // Demangled type name of the held exception ("twist::ConnectionDone").
  std::string typeName() const;

  // "[Failure instance: twist::ConnectionDone: Connection was closed cleanly.]"
  std::string toString() const;

  const std::exception_ptr& exception() const { return error_; }
  explicit operator bool() const { return static_cast<bool>(error_); }

 private:
  std::exception_ptr error_;
  const std::exception* object_ = nullptr;  // the held exception, if it is a std::exception
};

}  // namespace twist
