// Command-line flags shared by the example servers: --listen ENDPOINT (an endpoint string:
// "tcp:8000", "unix:/tmp/echo.sock", ...), or --port (default 8000, 0 = any free port) and
// --interface (default 127.0.0.1) and --idle-timeout (seconds a connection may stay silent
// before the server closes it; default 300, 0 = never; for the servers that use it). Accepts
// "--flag value" and "--flag=value".
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

namespace twist::examples {

struct ServerFlags {
  uint16_t port = 8000;
  std::string interface = "127.0.0.1";
  double idleTimeout = 300;
  // --listen ENDPOINT ("tcp:8000", "unix:/run/echo.sock", "ssl:8443:privateKey=...",
  // "systemd:domain=INET:index=0"; twist/transports/endpoints.h): where to listen, instead of
  // --port and --interface.
  std::string listen;
  // The endpoint string to listen on: --listen, or tcp with --port and --interface.
  std::string endpoint() const {
    if (!listen.empty()) return listen;
    std::string iface;
    for (char c : interface) {
      if (c == ':' || c == '\\') iface += '\\';
      iface += c;
    }
    return "tcp:" + std::to_string(port) + ":interface=" + iface;
  }
  // The values of the program's own flags (`extra`), by name ("--cert"); "" when not given.
  std::vector<std::pair<std::string, std::string>> extra;
  std::string get(const std::string& name) const {
    for (auto& [k, v] : extra) {
      if (k == name) return v;
    }
    return "";
  }
};

// `extra` names further "--flag value" flags the program reads itself (flags.get("--cert")).
inline ServerFlags parseServerFlags(int argc, char** argv, std::vector<std::string> extra = {},
                                    uint16_t defaultPort = 8000) {
  ServerFlags flags;
  flags.port = defaultPort;
  auto usage = [&] {
    std::fprintf(stderr,
                 "usage: %s [--listen ENDPOINT | --port N [--interface ADDRESS]] "
                 "[--idle-timeout SECONDS]",
                 argv[0]);
    for (auto& e : extra) std::fprintf(stderr, " [%s VALUE]", e.c_str());
    std::fprintf(stderr, "\n");
    std::exit(2);
  };
  auto isExtra = [&](const std::string& a) {
    return std::find(extra.begin(), extra.end(), a) != extra.end();
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc && (arg == "--port" || arg == "--interface" || arg == "--listen" ||
                                arg == "--idle-timeout" || isExtra(arg))) {
      value = argv[++i];
    } else {
      usage();
    }
    if (isExtra(arg)) {
      flags.extra.emplace_back(arg, value);
    } else if (arg == "--port") {
      char* end = nullptr;
      long port = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || port < 0 || port > 65535) usage();
      flags.port = static_cast<uint16_t>(port);
    } else if (arg == "--interface") {
      flags.interface = value;
    } else if (arg == "--listen") {
      flags.listen = value;
    } else if (arg == "--idle-timeout") {
      char* end = nullptr;
      double t = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(t >= 0) || t > 1e9) usage();
      flags.idleTimeout = t;
    } else {
      usage();
    }
  }
  return flags;
}

// Prints "listening on HOST:PORT" once `reactor` runs: the line tests/ and bench/ read the
// port from (with --port 0). `port` (a shared_ptr to the listening port) must outlive run().
template <class Reactor, class PortPtr>
void announceWhenRunning(Reactor& reactor, const PortPtr& port) {
  reactor.callWhenRunning(
      [&port] { std::cout << "listening on " << port->getHost().toString() << std::endl; });
}

struct ClientFlags {
  // --connect ENDPOINT ("tcp:HOST:PORT", "unix:/tmp/echo.sock", "ssl:HOST:PORT:caFile=...";
  // twist/transports/endpoints.h), instead of --host and --port.
  std::string connect;
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  double timeout = 10;
  std::vector<std::string> args;  // what is left: the messages to send
};

// --host, --port, --timeout (seconds); everything else is a positional argument. `extra` names
// further "--flag value" flags the program reads itself (they are kept in `args`, flag first).
inline ClientFlags parseClientFlags(int argc, char** argv, std::vector<std::string> extra = {},
                                    uint16_t defaultPort = 8000) {
  ClientFlags flags;
  flags.port = defaultPort;
  auto usage = [&] {
    std::fprintf(stderr,
                 "usage: %s [--connect ENDPOINT | --host HOST --port N] [--timeout SECONDS]",
                 argv[0]);
    for (auto& e : extra) std::fprintf(stderr, " [%s VALUE]", e.c_str());
    std::fprintf(stderr, " [MESSAGE...]\n");
    std::exit(2);
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      flags.args.push_back(arg);
      continue;
    }
    std::string value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      usage();
    }
    char* end = nullptr;
    if (arg == "--connect") {
      flags.connect = value;
    } else if (arg == "--host") {
      flags.host = value;
    } else if (arg == "--port") {
      long port = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || port <= 0 || port > 65535) usage();
      flags.port = static_cast<uint16_t>(port);
    } else if (arg == "--timeout") {
      flags.timeout = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || flags.timeout <= 0) usage();
    } else if (std::find(extra.begin(), extra.end(), arg) != extra.end()) {
      flags.args.push_back(arg);
      flags.args.push_back(value);
    } else {
      usage();
    }
  }
  return flags;
}

}  // namespace twist::examples
