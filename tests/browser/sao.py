"What a person does in SAO, Tryton's web client, as Playwright steps."
import re
import time
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

import stack

SCREENSHOTS = Path(__file__).resolve().parents[2] / 'docs' / 'screenshots'


def screenshot(page, name):
    "Save what the page shows (the README embeds some of these)."
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f'{name}.png'))


def login(page, demo, account, name, fragment=''):
    """Log in to SAO as `account` (login, password); `fragment` is the
    record or action to open at once, e.g. 'model/gnuhealth.patient/4'."""
    login, password = account
    page.goto(f'{demo.trytond.url}#{stack.DATABASE}/{fragment}'.rstrip('/'))
    page.fill('.login-dialog input#login', login)
    page.click('.login-dialog button[type=submit]')
    page.fill('input[type=password]', password)
    page.keyboard.press('Enter')
    # The navbar names the logged-in user.
    page.get_by_text(name, exact=True).first.wait_for()


def patient_studies(page, demo, account, name, patient):
    """Log in to SAO on the form of `patient` (from demo.patient()) and
    open its Imaging Studies page; return the tab."""
    login(page, demo, account, name,
          f"model/gnuhealth.patient/{patient['patient_id']}")
    notebook_page(page, 'Imaging Studies')
    return current_tab(page)


def menu(page, *path):
    "Open a menu entry, e.g. menu(page, 'Radiology', 'Unmatched Studies')."
    for entry in path:
        page.locator('#menu').get_by_text(entry, exact=True).first.click()


def current_tab(page):
    return page.locator('#tabcontent > .tab-pane.active')


def notebook_page(page, title):
    current_tab(page).locator('.nav-tabs a', has_text=re.compile(
        rf'^\s*{re.escape(title)}\s*$')).first.click()


def launch_action(page, name):
    "The toolbar's 'Launch action' menu, e.g. a wizard."
    current_tab(page).locator('button#action').click()
    page.locator('.dropdown-menu a', has_text=name).first.click()


def dialog(page):
    return page.locator('.modal-dialog').last


def choose(page, name, typed, record, timeout=30000):
    """Type `typed` in the dialog's many2one field `name` and pick `record`
    (its full label) among the matches SAO proposes, as a person does.

    Not Tab: SAO ignores Tab while its list of matches is open, and that
    list opens 300 ms after typing plus a server round-trip, so what Tab
    does would depend on the machine's speed.
    """
    # Typing before the dialog is shown is lost: SAO draws the record into
    # it then. Shown, it puts the focus on its first field.
    page.wait_for_function("""() => {
        const shown = [...document.querySelectorAll('.modal.in')].pop();
        return shown && shown.contains(document.activeElement);
    }""", timeout=timeout)
    field = dialog(page).locator(f'input[name="{name}"]')
    match = page.locator('.modal-dialog .dropdown.open .dropdown-menu li a',
                         has_text=record).first
    # On a loaded machine SAO may still redraw the dialog after it took the
    # focus, wiping what was typed or closing its list: then a person types
    # again. Each try waits for the list; the whole is bounded by `timeout`.
    deadline = time.monotonic() + timeout / 1000
    while True:
        field.fill('')
        field.fill(typed)
        try:
            match.click(timeout=min(10000, timeout))
            break
        except PlaywrightTimeout:
            if time.monotonic() > deadline:
                raise
    page.wait_for_function(
        """([name, record]) => [...document.querySelectorAll(
            `.modal-dialog input[name="${name}"]`)].some(e => e.value === record)""",
        arg=[name, record], timeout=timeout)
