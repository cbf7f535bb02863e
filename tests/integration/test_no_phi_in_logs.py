"""No secret and no PHI in what the plugin writes or answers.

A whole sync with a distinctive password and a distinctive patient (name
and birth date, in GNU Health and in the DICOM files), through failures:
a wrong password, a study GNU Health refuses, trytond down, and a bad
configuration. Then every line of Orthanc's log (at verbose level) and
every answer of the plugin's routes is searched: none may hold the password,
the patient's names or birth date. UIDs and Orthanc ids are fine.

The `state` route is the one exception for the patient: it is Orthanc
Explorer's panel, telling the user (behind Orthanc's login, on a page that
shows the same patient) whom the study is linked to. It is searched for the
password.
"""
import base64
import datetime
import json
import urllib.request

from proteus import Model

import demo_data
import samples
import stack
from stack import wait_until

SECRET = 'Zebu-Quartz-7731-Secret'
GIVEN, FAMILY = 'Quorrazyx', 'Vantablackova'
BIRTH = datetime.date(1923, 4, 17)
FORBIDDEN = [SECRET, GIVEN, FAMILY, BIRTH.strftime('%Y%m%d'), BIRTH.isoformat(),
             BIRTH.strftime('%d/%m/%Y'), BIRTH.strftime('%m/%d/%Y')]
FAST = {'RetryMinDelay': 0.5, 'RetryMaxDelay': 2, 'PollInterval': 1,
        'TrytonPassword': SECRET, 'Worklist': {'RefreshInterval': 1, 'MaxStaleness': 30}}


def leaks(text):
    "The forbidden values found in `text` (case-insensitive)."
    return [value for value in FORBIDDEN if value.lower() in text.lower()]


def start_verbose(orthanc):
    """Start Orthanc and switch its log to verbose (PUT /tools/log-level and
    the plugins' category), so the plugin's LogInfo lines are written too."""
    orthanc.start()
    token = base64.b64encode(':'.join(stack.ORTHANC_ADMIN).encode()).decode()
    for path in ('/tools/log-level', '/tools/log-level-plugins'):
        request = urllib.request.Request(orthanc.url + path, data=b'verbose', method='PUT')
        request.add_header('Authorization', 'Basic ' + token)
        urllib.request.urlopen(request, timeout=30).read()
    return orthanc


class Answers:
    "Every answer of the plugin's routes during the test, as text."

    def __init__(self, orthanc):
        self.orthanc, self.texts = orthanc, []

    def __call__(self, method, path):
        answer = self.orthanc.request(method, path)
        self.texts.append(json.dumps(answer, ensure_ascii=False))
        return answer

    def status(self):
        return self('GET', '/gnuhealth/status')

    def every_route(self, study_id):
        self.status()
        self('GET', f'/gnuhealth/studies/{study_id}/viewers')
        return self('POST', f'/gnuhealth/studies/{study_id}/sync')


def test_no_secret_nor_phi_in_logs_and_answers(trytond, gnuhealth, tmp_path, failure_logs):
    sync_user, = Model.get('res.user').find([('login', '=', stack.SYNC[0])])
    sync_user.password = SECRET
    sync_user.save()
    orthanc = stack.Orthanc(tmp_path / 'orthanc', trytond.url, gnuhealth=FAST)
    # Two failures of its own: a wrong password that contains the right one
    # (trytond locks a login out after a few refusals: this one goes last),
    # and a password where a string should be.
    wrong = stack.Orthanc(tmp_path / 'wrong', trytond.url,
                          gnuhealth={**FAST, 'TrytonPassword': SECRET + '-old'})
    broken = stack.Orthanc(tmp_path / 'broken', trytond.url,
                           gnuhealth={**FAST, 'TrytonPassword': [SECRET]})
    failure_logs([orthanc, wrong, broken, trytond])
    try:
        check_a_whole_sync(start_verbose(orthanc), trytond, tmp_path)
        start_verbose(broken)
        wait_until(lambda: 'GNU Health plugin disabled' in
                   (broken.workdir / 'orthanc.log').read_text(), 30, 'the config error')
        start_verbose(wrong)
        wait_until(lambda: 'refused' in (wrong.workdir / 'orthanc.log').read_text(), 30,
                   'the login refused')
        wrong.answers = Answers(wrong)
        wrong.answers.status()
    finally:
        for server in (orthanc, wrong, broken):
            server.stop()
    texts = {f'{server.workdir.name} log: {line.strip()}': line
             for server in (orthanc, wrong, broken)
             for line in (server.workdir / 'orthanc.log').read_text(
                 errors='replace').splitlines()}
    texts.update({f'answer: {text}': text
                  for text in orthanc.answers.texts + wrong.answers.texts})
    # The log is verbose: the plugin's info lines are in what was searched.
    assert any('(plugins) GNU Health' in line for line in texts)
    assert {where: leaks(text) for where, text in texts.items() if leaks(text)} == {}


def check_a_whole_sync(orthanc, trytond, tmp_path):
    """Sync a study of the patient, one GNU Health refuses, and one that
    arrives while trytond is down; calls every route on the way."""
    answers = orthanc.answers = Answers(orthanc)
    patient = demo_data.patient(GIVEN, FAMILY, gender='f', dob=BIRTH)
    tags = dict(PatientID=patient.puid, PatientName=f'{FAMILY}^{GIVEN}',
                PatientBirthDate=BIRTH.strftime('%Y%m%d'))
    orthanc.store(samples.generate_study(tmp_path / 'good', series=1, instances=2, **tags))
    Study = Model.get('gnuhealth.radiology.study')
    wait_until(lambda: Study.find([('reception', '=', 'complete')]), 60, 'the study synced')
    good_id, = orthanc.get('/studies')

    # A study GNU Health refuses (a 70-character UID), same patient.
    bad_uid = '1.2.826.0.1.3680043.8.498.' + '7' * 44
    orthanc.store(samples.generate_study(tmp_path / 'bad', series=1, instances=1,
                                         study_uid=bad_uid, **tags))
    failed = wait_until(lambda: answers.status()['failed'], 60, 'the refused study')
    assert answers.every_route(failed[0]['orthanc_id'])['result'] == 'rejected'
    assert answers.every_route(good_id)['result'] == 'pushed'

    # trytond down while another study of the patient arrives.
    trytond.stop()
    orthanc.store(samples.generate_study(tmp_path / 'late', series=1, instances=1, **tags))
    wait_until(lambda: answers.status()['gnuhealth_reachable'] is False, 30, 'trytond down')
    assert answers.every_route(good_id)['result'] == 'unavailable'
    answers('POST', '/gnuhealth/resync')
    trytond.start()
    wait_until(lambda: answers.status()['pending'] == 0
               and answers.status()['gnuhealth_reachable'], 60, 'synced again')
    state = orthanc.get(f'/gnuhealth/studies/{good_id}/state')
    assert SECRET not in json.dumps(state)
