"""Command line of the local stack: python -m devstack up|down|status|env|zenith."""

import argparse
import sys

from devstack import config, stack, zenith
from devstack.procs import DevstackError


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "up":
            stack.up()
            print_up()
        elif args.command == "down":
            stopped = stack.down()
            print("devstack: stopped " + (", ".join(stopped) if stopped else "nothing (nothing was running)"))
        elif args.command == "status":
            for name, state in stack.status().items():
                print(f"{name:15} {state}")
        elif args.command == "env":
            environment = stack.console_env()
            # `make run`'s console: with the node its platforms run there (the tests keep helm-without-node).
            environment["HELM_EXECUTABLE"] = environment.get("NODE_HELM_EXECUTABLE", environment["HELM_EXECUTABLE"])
            # Its Zenith links lead to `zenith --watch`'s proxy: plain http on loopback, no certificate.
            environment["ZENITH_LINK_SCHEME"] = "http"
            environment["ZENITH_LINK_PORT"] = str(config.PORTS.zenith_proxy)
            for key, value in environment.items():
                print(f"export {key}='{value}'")
        elif args.command == "zenith":
            play_zenith(args.platform, args.watch)
    except DevstackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line's parser: one subcommand per action."""
    top = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True, metavar="{up,down,status,env,zenith}")
    commands.add_parser("up", help="build what is missing and start the stack")
    commands.add_parser("down", help="stop the processes that up started")
    commands.add_parser("status", help="show which parts are running")
    commands.add_parser("env", help="print the console's environment as shell exports")
    play = commands.add_parser(
        "zenith",
        help=f"play the Zenith operator: mark platforms' Reservations Ready under {config.ZENITH_BASE_DOMAIN}",
    )
    play.add_argument("platform", nargs="?", help="only this platform (default: every platform)")
    play.add_argument(
        "--watch",
        action="store_true",
        help=f"keep marking Reservations Ready until Ctrl-C, serving them at {config.HOST}:{config.PORTS.zenith_proxy}",
    )
    return top


def print_up() -> None:
    """Where the parts of the running stack are, and the demo logins."""
    admin = f"{config.KEYCLOAK_ADMIN_USER}/{config.KEYCLOAK_ADMIN_PASSWORD}"
    print(f"devstack: Keycloak {config.KEYCLOAK_URL} (its admin console: {admin})")
    print(f"devstack: Kubernetes API {config.KUBE_URL}, kubeconfig {config.KUBECONFIG}")
    versions = ", ".join(config.APP_CHART_VERSIONS)
    print(f"devstack: chart repository {config.CHART_REPO_URL} ({config.APP_CHART_NAME} {versions})")
    print(f"devstack: logs in {config.LOG_DIR}")
    domain = config.ZENITH_BASE_DOMAIN
    print(
        f"devstack: no Zenith runs here; play it (http://<service>-<platform>.{domain}:{config.PORTS.zenith_proxy}) "
        "with: python -m devstack zenith --watch"
    )
    for username, password, role in config.DEMO_USERS:
        print(f"devstack: demo login {username} / {password} ({role})")


def play_zenith(platform: str | None, keep_watching: bool) -> None:
    """Mark the Reservations Ready once, or keep doing so for new ones until Ctrl-C; print each address."""
    api = zenith.local_api()
    which = f"platform {platform}" if platform else "every platform"
    if keep_watching:
        proxy = zenith.start_proxy()
        print(
            f"devstack: marking the Reservations of {which} Ready as they appear, and serving them at "
            f"{zenith.proxy_url('<service>-<platform>.' + config.ZENITH_BASE_DOMAIN, proxy.port)}; stop with Ctrl-C",
            flush=True,
        )
        zenith.watch(api, platform, lambda line: print(f"devstack: {line}", flush=True), proxy=proxy)
    exposed = zenith.expose_locally(api, platform)
    for item in exposed:
        print(f"devstack: {item}")
    if not exposed:
        print(
            f"devstack: no Reservations found for {which}: launch it on a cluster with Zenith exposure, "
            "or try again once its install has started (or use --watch)"
        )


if __name__ == "__main__":
    sys.exit(main())
