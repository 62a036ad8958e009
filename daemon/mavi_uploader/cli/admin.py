"""`check`, `install-service` and `uninstall-service`: the commands that set a host up."""

from __future__ import annotations

import argparse

from mavi_uploader.cli.checks import report, run_checks
from mavi_uploader.cli.common import FAILURES, failed
from mavi_uploader.cli.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import load_config
from mavi_uploader.redaction import register_secret
from mavi_uploader.service.install import InstallError, plan_install, plan_uninstall
from mavi_uploader.service.install_apply import apply, describe


def main(args: argparse.Namespace) -> int:
    try:
        return _check(args) if args.command == "check" else _service(args)
    except (*FAILURES, InstallError) as exc:
        return failed(exc)


def _service(args: argparse.Namespace) -> int:
    if args.command == "install-service":
        # Without --config the plan reads what the service itself will read.
        config = (
            load_config(config_path=args.config, require_api_key=False) if args.config else None
        )
        plan = plan_install(system=args.system, config=config, user=args.run_as)
    else:
        plan = plan_uninstall(system=args.system)
    if args.dry_run:
        print(describe(plan), end="")
        return EXIT_OK
    messages = apply(plan)
    print("\n".join(messages))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    def load() -> Config:
        config = load_config(config_path=args.config)
        for secret in config.secrets:
            register_secret(secret)
        return config

    findings = run_checks(load)
    print(report(findings))
    if any(f.config_error for f in findings):
        return EXIT_USAGE
    return EXIT_OK if all(f.ok for f in findings) else EXIT_FAILURE
