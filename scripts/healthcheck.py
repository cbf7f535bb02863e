"""The containers' health check (compose.yaml): exit 0 when URL answers 200.

    healthcheck.py URL [--user USER --password-file FILE]

It asks the server of its own container on localhost, whose certificate
names the host users type, not localhost: the certificate is not verified
here (GNU Health's plugin verifies trytond's, GnuHealth.TrytonCaBundle).
"""
import argparse
import base64
import ssl
import sys
import urllib.error
import urllib.request


def healthy(url, user=None, password=None, timeout=5):
    request = urllib.request.Request(url)
    if user:
        token = base64.b64encode(f'{user}:{password}'.encode()).decode()
        request.add_header('Authorization', f'Basic {token}')
    context = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('url')
    parser.add_argument('--user')
    parser.add_argument('--password-file', type=argparse.FileType())
    args = parser.parse_args(argv)
    password = args.password_file.read().strip() if args.password_file else None
    return 0 if healthy(args.url, args.user, password) else 1


if __name__ == '__main__':
    sys.exit(main())
