#include "twist/reactor/failure.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <typeinfo>

namespace twist {

Failure::Failure(std::exception_ptr e) : error_(std::move(e)) {
  if (!error_) return;
  try {
    std::rethrow_exception(error_);
  } catch (const std::exception& ex) {
    object_ = &ex;  // lives in the exception object error_ keeps alive
  } catch (...) {
  }
}

void Failure::raise() const {
  if (!error_) throw std::logic_error("Failure::raise on an empty Failure");
  std::rethrow_exception(error_);
}

std::string Failure::getErrorMessage() const {
  if (!error_) return "(no failure)";
  if (object_ != nullptr) return object_->what();
  try {
    std::rethrow_exception(error_);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "non-standard exception of type " + typeName();
  }
}

std::string Failure::typeName() const {
  if (!error_) return "(none)";
  const std::type_info* type = nullptr;
  if (object_ != nullptr) {
    type = &typeid(*object_);
  } else {
    try {
      std::rethrow_exception(error_);
    } catch (...) {
      type = abi::__cxa_current_exception_type();
    }
  }
  if (type == nullptr) return "(unknown)";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type->name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type->name());
}

std::string Failure::toString() const {
  return "[Failure instance: " + typeName() + ": " + getErrorMessage() + "]";
}

}  // namespace twist
