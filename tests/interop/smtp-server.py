"""A real SMTP server for tests/receivers.rs: Python's aiosmtpd on 127.0.0.1, at a port the
kernel picks, saving each message it accepts to a directory.

Usage: python3 smtp-server.py DIR [--tls none|starttls|implicit --cert PEM --key PEM]
                                  [--user NAME --password WORD]

Prints `listening on PORT` once it accepts connections. Each message is saved as
DIR/N.eml (its bytes as received) and DIR/N.json (the envelope: mail_from, rcpt_tos, and
the login it was sent under), each written whole before it appears under its name. With
--user, AUTH (PLAIN, LOGIN) is required before MAIL and only that login is accepted; with
--tls starttls, STARTTLS is required before anything else.
"""
import argparse
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Saver:
    """Saves each message, numbered in the order accepted."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.count = 0

    def write(self, name: str, data: bytes) -> None:
        path = os.path.join(self.directory, name)
        with open(path + ".part", "wb") as f:
            f.write(data)
        os.rename(path + ".part", path)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "login": login}
        # The envelope last: the test waits for it, and the message is then whole.
        self.write(f"{self.count}.eml", envelope.original_content)
        self.write(f"{self.count}.json", json.dumps(meta).encode())
        return "250 Message accepted"


def authenticator(user: str, password: str):
    def check(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    return check


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    options = {"hostname": "smtp.test", "enable_SMTPUTF8": True}
    if args.user:
        options.update(
            authenticator=authenticator(args.user, args.password),
            auth_required=True,
            # Plain SMTP with a login is what a relay on the same machine gets.
            auth_require_tls=False,
        )
    if args.tls == "starttls":
        options.update(tls_context=context, require_starttls=True)
    saver = Saver(args.dir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(saver, **options),
        host="127.0.0.1",
        port=0,
        ssl=context if args.tls == "implicit" else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
