"What a person does in SAO, Tryton's web client, as Playwright steps."
import re
from pathlib import Path

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
    """Type `typed` in the dialog's many2one field `name` and end up with
    `record` (its full label) chosen.

    SAO fills in a single match itself, or opens its search dialog when
    several match; either may take a server round-trip, so wait for
    whichever happens rather than for a fixed time.
    """
    field = dialog(page).locator(f'input[name="{name}"]')
    field.fill(typed)
    field.press('Tab')
    outcome = page.wait_for_function(
        """([name, record]) => {
            const dialogs = [...document.querySelectorAll('.modal-dialog')];
            if (dialogs.some(d => [...d.querySelectorAll(`input[name="${name}"]`)]
                    .some(e => e.value === record))) {
                return 'chosen';
            }
            return dialogs.some(d => d.querySelector('.modal-title')
                && d.querySelector('.modal-title').textContent.includes('Search'))
                ? 'search' : false;
        }""", arg=[name, record], timeout=timeout).json_value()
    if outcome == 'search':
        search = page.locator('.modal-dialog', has=page.locator(
            '.modal-title', has_text='Search')).last
        # The row's selector, not its text: the text links to the record.
        search.locator('tr', has_text=record).first.locator('input').first.click()
        search.get_by_role('button', name=re.compile(r'^\s*ok\s*$', re.I)).click()
        search.wait_for(state='detached')
        page.wait_for_function(
            """([name, record]) => [...document.querySelectorAll(
                `.modal-dialog input[name="${name}"]`)].some(e => e.value === record)""",
            arg=[name, record], timeout=timeout)
