"""Flask CLI commands: migrate, load-demo, and the scheduled jobs run by hand."""

from __future__ import annotations

import click
from flask import Flask, current_app


def register_cli(app: Flask) -> None:
    @app.cli.command("migrate")
    def migrate_command() -> None:
        """Bring the database schema to the latest migration."""
        from fieldsync.migrate import upgrade

        services = current_app.extensions["fieldsync"]
        upgrade(services.config.database_url)
        click.echo(f"database at head: {services.engine.url.render_as_string(hide_password=True)}")

    @app.cli.command("load-demo")
    @click.option("--quiet", is_flag=True, help="Do not print the demo accounts.")
    def load_demo_command(quiet: bool) -> None:
        """Load the demo streets, roster and catalogue (idempotent) and print the accounts."""
        from fieldsync.demo import format_accounts, load_demo

        services = current_app.extensions["fieldsync"]
        with services.sessionmaker() as session, session.begin():
            accounts = load_demo(session, hasher=services.hasher)
        if not quiet:
            click.echo(format_accounts(accounts))

    from fieldsync.jobs import register_cli as register_jobs_cli

    register_jobs_cli(app)
