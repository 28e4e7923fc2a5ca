"""What a workspace needs to build twist offline, in one macro.

In your WORKSPACE, before anything else:

    local_repository(name = "twist", path = "/path/to/twist")
    load("@twist//:deps.bzl", "twist_dependencies")
    twist_dependencies()

It defines, unless the workspace already has them: the three repositories Bazel 4's
@bazel_tools would otherwise download (@rules_cc, @rules_java, @remote_coverage_tools), as
twist's small local stand-ins (third_party/), and @twist_system_libs, Debian's libevent,
GoogleTest and Google Benchmark under /usr (tools/setup installs them). twist's own WORKSPACE
calls it too.
"""

def _stand_in_impl(rctx):
    # The stand-in folder is a sibling of the marker file, in twist's third_party/.
    folder = rctx.path(rctx.attr.marker).dirname.get_child(rctx.attr.folder)
    for child in folder.readdir():
        rctx.symlink(child, child.basename)

_stand_in = repository_rule(
    implementation = _stand_in_impl,
    attrs = {
        "marker": attr.label(allow_single_file = True),
        "folder": attr.string(),
    },
    local = True,
)

def _maybe(rule, name, **kwargs):
    if not native.existing_rule(name):
        rule(name = name, **kwargs)

def twist_dependencies():
    """Defines the repositories twist needs (see the file's comment)."""
    marker = Label("//third_party:README.md")
    for name in ["rules_cc", "rules_java", "remote_coverage_tools"]:
        _maybe(_stand_in, name, marker = marker, folder = name)
    _maybe(
        native.new_local_repository,
        "twist_system_libs",
        path = "/usr",
        build_file = str(Label("//third_party/system:system_libs.BUILD")),
    )
