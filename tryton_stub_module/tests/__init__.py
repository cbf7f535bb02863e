# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
import importlib


def load_tests(loader, tests, pattern):
    # Let `python -m unittest tryton_stub_module.tests` run every test of
    # the module, as Tryton's own runner does with discovery.
    for name in ['test_module', 'test_identity', 'test_upload',
            'test_bulk_create', 'test_scenario']:
        module = importlib.import_module('.' + name, __name__)
        tests.addTests(loader.loadTestsFromModule(module, pattern=pattern))
    return tests
