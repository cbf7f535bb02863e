"""Reading Orthanc's /changes log from the persisted cursor.

The cursor (an Orthanc global property, `CursorProperty`) says up to which
change GNU Health has everything. This reader hands the worker the next
page, holds the cursor at a gap in the change numbers for at most
`ChangeGapWait` seconds in case another node's change N becomes visible
after N+1 (with orthanc-postgresql 4.0 it never does: its transactions are
serializable and a missing number was rolled back; docs/operations.md,
"Cluster", point 8), and starts over when Orthanc's log was
replaced. The cursor moves only when the worker says the page is in GNU
Health (`advance`).
"""
from . import changes


class ChangeLog:
    def __init__(self, settings, orthanc, status, log, clock, on_restart):
        self._settings = settings
        self._orthanc = orthanc
        self._status = status
        self._log = log
        self._clock = clock
        self._on_restart = on_restart  # called when the log restarted below the cursor
        self.cursor = None  # None until start()
        self._gap = None  # (first missing change number, clock when first seen)

    def start(self):
        self.cursor = self._orthanc.get_cursor()
        self._status.update(cursor=self.cursor)

    def gap_deadline(self):
        "When the wait at the current gap ends (None: no gap)."
        return self._gap and self._gap[1] + self._settings.change_gap_wait

    def read(self):
        """(entries to handle now, cursor after them, more to read at once)."""
        page = self._page()
        entries, last, more = self._until_gap(page.get("Changes", []), page["Last"])
        return entries, last, more if more is not None else not page.get("Done", True)

    def advance(self, cursor):
        if cursor != self.cursor:
            self._orthanc.set_cursor(cursor)
            self.cursor = cursor
        self._status.update(cursor=cursor)

    def last_change_now(self):
        """Orthanc's last change number, read now (None before start)."""
        last = self._orthanc.get("/changes?last")
        if last is not None and self.cursor is not None:
            self._status.update(last_change=last["Last"])

    def _page(self):
        page = self._read_since()
        if page["Last"] < self.cursor:
            # Orthanc's database was replaced or restored: its sequence
            # numbers restarted below our cursor. Re-scan everything; the
            # pushes are idempotent so nothing is duplicated.
            self._log("warning", f"GNU Health: Orthanc's change log restarted (cursor "
                                 f"{self.cursor} > last change {page['Last']}); "
                                 f"re-scanning it from the start")
            self.advance(0)
            self._on_restart("change log reset")
            page = self._read_since()
        last = page["Last"]
        if not page.get("Done", True):
            last = self._orthanc.get("/changes?last")["Last"]
        self._status.update(last_change=last)
        return page

    def _read_since(self):
        page = self._orthanc.get(
            f"/changes?since={self.cursor}&limit={self._settings.batch_size}")
        if page is None:
            raise RuntimeError("Orthanc answered 404 to /changes")
        return page

    def _until_gap(self, entries, last):
        """(entries to handle now, cursor after them, more) for a page:
        the entries before a gap in the change numbers while the gap is
        younger than ChangeGapWait (more False: wait); past that, up to the
        first entry after the gap (more True: read on); without a gap, the
        page (more None: as the page says)."""
        gap = changes.first_gap(self.cursor, entries)
        wait = self._settings.change_gap_wait
        if gap is None or wait <= 0:
            self._gap = None
            return entries, last, None
        missing = entries[gap - 1]["Seq"] + 1 if gap else self.cursor + 1
        now = self._clock()
        if self._gap is None or self._gap[0] != missing:
            self._gap = (missing, now)
        if now - self._gap[1] < wait:
            return entries[:gap], missing - 1, False
        self._gap = None
        self._log("info", f"GNU Health: change(s) {missing} to {entries[gap]['Seq'] - 1} "
                          f"did not appear in Orthanc's log within {wait:g} s; moving on "
                          f"(a resource deleted, or a transaction rolled back)")
        return entries[:gap + 1], entries[gap]["Seq"], True
