"""Command line of the local stack: python -m devstack up|down|status|env."""

import argparse
import sys

from devstack import config, stack
from devstack.procs import DevstackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            stack.up()
            admin = f"{config.KEYCLOAK_ADMIN_USER}/{config.KEYCLOAK_ADMIN_PASSWORD}"
            print(f"devstack: Keycloak {config.KEYCLOAK_URL} (its admin console: {admin})")
            print(f"devstack: Kubernetes API {config.KUBE_URL}, kubeconfig {config.KUBECONFIG}")
            versions = ", ".join(config.APP_CHART_VERSIONS)
            print(f"devstack: chart repository {config.CHART_REPO_URL} ({config.APP_CHART_NAME} {versions})")
            print(f"devstack: logs in {config.LOG_DIR}")
            for username, password, role in config.DEMO_USERS:
                print(f"devstack: demo login {username} / {password} ({role})")
        elif args.command == "down":
            stopped = stack.down()
            print("devstack: stopped " + (", ".join(stopped) if stopped else "nothing (nothing was running)"))
        elif args.command == "status":
            for name, state in stack.status().items():
                print(f"{name:15} {state}")
        elif args.command == "env":
            for key, value in stack.console_env().items():
                print(f"export {key}='{value}'")
    except DevstackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
