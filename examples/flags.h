// Command-line flags shared by the example servers: --port (default 8000, 0 = any free port)
// and --interface (default 127.0.0.1). Accepts "--flag value" and "--flag=value".
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace twist::examples {

struct ServerFlags {
  uint16_t port = 8000;
  std::string interface = "127.0.0.1";
};

inline ServerFlags parseServerFlags(int argc, char** argv) {
  ServerFlags flags;
  auto usage = [&] {
    std::fprintf(stderr, "usage: %s [--port N] [--interface ADDRESS]\n", argv[0]);
    std::exit(2);
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc && (arg == "--port" || arg == "--interface")) {
      value = argv[++i];
    } else {
      usage();
    }
    if (arg == "--port") {
      char* end = nullptr;
      long port = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || port < 0 || port > 65535) usage();
      flags.port = static_cast<uint16_t>(port);
    } else if (arg == "--interface") {
      flags.interface = value;
    } else {
      usage();
    }
  }
  return flags;
}

}  // namespace twist::examples
