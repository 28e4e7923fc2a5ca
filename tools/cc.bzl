"""twist_cc_library: a cc_library of twist's public API.

Its headers are included with a "twist/" prefix ("twist/reactor/reactor.h"), so they never clash
with a user's own "protocols/basic.h", and it is compiled as C++20 whatever the workspace's
flags are. (Code that includes twist's headers must be C++20 too: they say so with an #error.)
"""

def twist_cc_library(name, copts = [], **kwargs):
    native.cc_library(
        name = name,
        # Bazel strips the package path when a prefix is given: put it back after "twist/".
        include_prefix = "twist/" + native.package_name(),
        copts = copts + ["-std=c++20"],
        **kwargs
    )
