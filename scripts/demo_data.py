"""Accounts (and later demo records) in the demo/test GNU Health database.

Runs inside the venv with proteus talking straight to trytond's code
(`set_trytond`), while no trytond server is running on that database.
"""
import argparse

from proteus import Model, config as proteus_config


def group(xml_id):
    module, name = xml_id.split('.')
    ModelData = Model.get('ir.model.data')
    record, = ModelData.find([('module', '=', module), ('fs_id', '=', name)])
    return Model.get('res.group')(record.db_id)


def user(login, name, password, groups):
    "Create or update a user with exactly these groups."
    User = Model.get('res.user')
    found = User.find([('login', '=', login)])
    account = found[0] if found else User(login=login)
    account.name = name
    account.password = password
    account.groups.clear()
    account.groups.extend(group(g) for g in groups)
    account.save()
    return account


def accounts(sync_password):
    # The plugin's technical account: only what the sync needs.
    user('orthanc-sync', 'Orthanc synchronisation', sync_password,
         ['health_radiology.group_radiology_sync'])
    # The administrator also runs radiology, so the demo shows every menu.
    admin, = Model.get('res.user').find([('login', '=', 'admin')])
    admin.groups.extend([group('health_radiology.group_radiology_admin')])
    admin.save()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', required=True)
    parser.add_argument('--database', required=True)
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('accounts').add_argument('--sync-password', required=True)
    args = parser.parse_args()
    proteus_config.set_trytond(args.database, config_file=args.config)
    if args.command == 'accounts':
        accounts(args.sync_password)


if __name__ == '__main__':
    main()
