"""The cluster gap, forced for real: node A's store transaction is held open
in PostgreSQL after its first change took number N, while node B commits
change N+1. B's worker must hold its cursor at the gap for ChangeGapWait,
then move past it, and the held study must still reach GNU Health.

What the hold really produces with Debian's orthanc-postgresql 4.0 (checked
with psql): every change logged fires its trigger `InsertedChange`, which
updates one row of `GlobalIntegers` (key 6, the last change number), and
the plugin runs SERIALIZABLE transactions. So when B's change N+1 commits
while A's transaction is open, A fails to serialize when it updates that
row, and Orthanc retries A's store under new numbers after N+1: N itself
never appears (a hole, not a late change). Resource inserts also update
`GlobalIntegers` (counts), so B's change during the hold cannot be a store
(B would wait for A's locks, then retry after A: no gap); it is a metadata
change, which logs a change and touches no count.
"""
import re
import threading

from proteus import Model

import samples
from cluster import ClusterNode, psql
from stack import wait_until

HOLD = 6  # seconds A's transaction stays open after its first change
GAP_WAIT = 20  # B's ChangeGapWait: longer than the hold, so it is seen held
NODE_A_ROLE = 'node_a'
# Fired AFTER INSERT on Orthanc's `changes`, once (a sequence is not rolled
# back by A's retry), on node A's role only. Its name sorts before
# Orthanc's `insertedchange`, so the hold comes before A locks the
# GlobalIntegers row of the last change number, and B can commit N+1.
HOLD_TRIGGER = f"""
CREATE SEQUENCE gap_hold_once;
CREATE SEQUENCE gap_held;  -- setval is not rolled back either: N survives A's retry
CREATE FUNCTION gap_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_user = '{NODE_A_ROLE}' THEN
    IF nextval('gap_hold_once') = 1 THEN
      PERFORM setval('gap_held', NEW.seq);
      PERFORM pg_sleep({HOLD});
    END IF;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER a_gap_hold AFTER INSERT ON changes
  FOR EACH ROW EXECUTE FUNCTION gap_hold();
"""


def _study(directory, uid, patient):
    return samples.generate_study(directory, series=1, instances=2, study_uid=uid,
                                  PatientID=patient)


def _in_gnuhealth(uid):
    return Model.get('gnuhealth.radiology.study').find([('study_uid', '=', uid)])


def test_held_transaction_gap_is_waited_for_then_passed(
        tmp_path, postgresql, trytond, gnuhealth, failure_logs):
    common = dict(pg_port=postgresql, storage=tmp_path / 'storage', name='cluster',
                  stable_age=60)  # no StableStudy within the test
    # Only B syncs; no audit, so nothing but the change log brings X over.
    node_b = ClusterNode(tmp_path / 'node-b', trytond.url, **common, gnuhealth={
        'PollInterval': 1, 'AuditInterval': 0, 'ChangeGapWait': GAP_WAIT})
    node_a = ClusterNode(tmp_path / 'node-a', trytond.url, **common, pg_user=NODE_A_ROLE,
                         gnuhealth={'Enabled': False})
    failure_logs([node_a, node_b, trytond])
    x_uid, z_uid = '1.2.826.0.1.3680043.8.498.4343.1', '1.2.826.0.1.3680043.8.498.4343.2'
    try:
        node_b.start()  # creates Orthanc's schema, owned by the superuser
        # The plugin says it moved past a gap at Orthanc's info level.
        node_b.request('PUT', '/tools/log-level', b'verbose')
        # A role of its own, so the trigger can tell A's transactions apart;
        # superuser like `orthanc`, to use the same tables.
        psql(postgresql, f'CREATE ROLE {NODE_A_ROLE} LOGIN SUPERUSER')
        node_a.start()
        node_b.store(_study(tmp_path / 'z', z_uid, 'GAP-Z'))
        wait_until(lambda: _in_gnuhealth(z_uid), 60, 'study Z in GNU Health')
        z_id = node_b.get('/studies')[0]
        psql(postgresql, HOLD_TRIGGER)

        store_x = threading.Thread(
            target=node_a.store, args=(_study(tmp_path / 'x', x_uid, 'GAP-X'),))
        store_x.start()
        held = wait_until(lambda: int(psql(postgresql, 'SELECT last_value FROM gap_held '
                                                       'WHERE is_called') or 0),
                          60, "A's first change held")
        # B commits a change while A's is held: N+1 visible, N not.
        node_b.request('PUT', f'/studies/{z_id}/metadata/1024', b'gap')
        store_x.join()
        assert x_uid in {node_b.get(f'/studies/{s}')['MainDicomTags']['StudyInstanceUID']
                         for s in node_b.get('/studies')}
        # A committed after HOLD s; B's cursor is still before the gap.
        assert node_b.get('/gnuhealth/status')['cursor'] < held
        assert not _in_gnuhealth(x_uid)

        changes = node_b.get('/changes?since=0&limit=1000')['Changes']
        seqs = {c['Seq']: c['ChangeType'] for c in changes}
        metadata = min(s for s, t in seqs.items() if t == 'UpdatedMetadata')
        assert held not in seqs and metadata > held, (
            f'expected change {held} to be rolled back (A retried after change '
            f'{metadata}), see the module docstring: {seqs}')

        wait_until(lambda: _in_gnuhealth(x_uid), GAP_WAIT + 40,
                   'study X in GNU Health after the gap wait')
        log = (node_b.workdir / 'orthanc.log').read_text(errors='replace')
        assert re.search(rf"change\(s\) {held} to \d+ did not appear in Orthanc's log "
                         rf"within {GAP_WAIT:g} s; moving on", log)
        assert _in_gnuhealth(z_uid)
    finally:
        node_a.stop()
        node_b.stop()
