// GNU Health (orthanc-gnuhealth): a study's state in GNU Health on its
// Orthanc Explorer page, a "Send to GNU Health now" button and a link to the
// study's record in GNU Health's web client, and "Open in OHIF" when this
// Orthanc serves OHIF (the plugin's viewers route). Loaded by ExtendOrthancExplorer.
(function () {
  var STATE_LABELS = {
    'synced': 'In GNU Health',
    'receiving': 'In GNU Health, still receiving images',
    'failed': 'Refused by GNU Health',
    'not-synced': 'Not in GNU Health yet',
    'unknown': 'GNU Health unreachable'
  };
  var STATE_THEMES = {'synced': 'c', 'receiving': 'e', 'failed': 'e',
                      'not-synced': 'e', 'unknown': 'e'};

  function studyId() {
    return $.mobile.pageData ? $.mobile.pageData.uuid : null;
  }

  function text(element, value) {
    // Always as text: study and patient names come from DICOM tags.
    $(element).text(value || '');
  }

  function show(state) {
    var box = $('#gnuhealth-study');
    box.attr('data-gnuhealth-state', state.state);
    text('#gnuhealth-state-label', STATE_LABELS[state.state] || state.state);
    text('#gnuhealth-patient', state.patient ? 'Patient: ' + state.patient :
         (state.link_state ? 'Patient: none (' + state.link_state + ')' : ''));
    text('#gnuhealth-request', state.imaging_request ?
         'Imaging order: ' + state.imaging_request : '');
    text('#gnuhealth-message', state.message);
    $('#gnuhealth-state').attr('data-theme', STATE_THEMES[state.state] || 'c');
    if (state.tryton_url) {
      $('#gnuhealth-open').attr('href', state.tryton_url).closest('li').show();
    } else {
      $('#gnuhealth-open').closest('li').hide();
    }
    box.listview('refresh');
  }

  // The OHIF link of the viewers route (null when OHIF is not served).
  function showViewers(uuid) {
    $('#gnuhealth-ohif').closest('li').hide();
    $.ajax({
      url: '../gnuhealth/studies/' + uuid + '/viewers',
      dataType: 'json',
      cache: false,
      success: function (viewers) {
        if (uuid === studyId() && viewers.ohif) {
          $('#gnuhealth-ohif').attr('href', viewers.ohif).closest('li').show();
          $('#gnuhealth-study').listview('refresh');
        }
      }
    });
  }

  function refresh(uuid) {
    text('#gnuhealth-state-label', 'Asking GNU Health\u2026');
    text('#gnuhealth-patient', '');
    text('#gnuhealth-request', '');
    text('#gnuhealth-message', '');
    $.ajax({
      url: '../gnuhealth/studies/' + uuid + '/state',
      dataType: 'json',
      cache: false,
      success: function (state) {
        if (uuid === studyId()) { show(state); }
      },
      error: function (xhr) {
        show({state: 'unknown', message: 'The GNU Health plugin did not answer ' +
              '(HTTP ' + xhr.status + '). Check that it is loaded: ' +
              '/gnuhealth/status, and Orthanc\'s log.'});
      }
    });
  }

  $('#study').live('pagebeforecreate', function () {
    var box = $('<ul data-role="listview" data-inset="true" data-theme="d" ' +
                'data-divider-theme="c" id="gnuhealth-study">' +
      '<li data-role="list-divider">GNU Health</li>' +
      '<li id="gnuhealth-state" style="white-space:normal">' +
        '<h3 id="gnuhealth-state-label" style="white-space:normal"></h3>' +
        '<p id="gnuhealth-patient" style="white-space:normal"></p>' +
        '<p id="gnuhealth-request" style="white-space:normal"></p>' +
        '<p id="gnuhealth-message" style="white-space:normal"></p></li>' +
      '<li data-icon="refresh"><a href="#" id="gnuhealth-send">' +
        'Send to GNU Health now</a></li>' +
      '<li data-icon="arrow-r" style="display:none"><a href="#" id="gnuhealth-ohif" ' +
        'target="_blank" rel="noopener" data-ajax="false">Open in OHIF</a></li>' +
      '<li data-icon="arrow-r"><a href="#" id="gnuhealth-open" target="_blank" ' +
        'rel="noopener" data-ajax="false">Open in GNU Health</a></li>' +
      '</ul>');
    box.insertAfter($('#study-info'));
  });

  $('#study').live('pagebeforeshow', function () {
    var uuid = studyId();
    if (uuid) { refresh(uuid); showViewers(uuid); }
  });

  // The home page: what the plugin is doing (resync progress, refusals).
  $('#lookup').live('pagebeforecreate', function () {
    $('<ul data-role="listview" data-inset="true" data-theme="d" ' +
      'data-divider-theme="c" id="gnuhealth-status">' +
      '<li data-role="list-divider">GNU Health</li>' +
      '<li style="white-space:normal"><p id="gnuhealth-status-text" ' +
      'style="white-space:normal"></p></li>' +
      '<li data-icon="info"><a href="../gnuhealth/status" target="_blank" ' +
      'data-ajax="false">Synchronization status (JSON)</a></li></ul>')
      .appendTo($('#lookup div[data-role="content"]').first());
  });

  $('#lookup').live('pagebeforeshow', function () {
    $.ajax({
      url: '../gnuhealth/status', dataType: 'json', cache: false,
      success: function (s) {
        var words = [];
        if (s.running === false) {
          words.push('The sync worker is not running yet.');
        } else {
          words.push(s.gnuhealth_reachable === false ?
            'GNU Health is unreachable: ' + s.last_error + '. Retrying; nothing is lost.' :
            'Studies are sent to GNU Health as they arrive' +
            (s.pending ? ' (' + s.pending + ' changes waiting).' : '.'));
          if (s.resync && s.resync.running) {
            words.push('Re-sending the whole archive: ' + s.resync.done + ' of ' +
                       s.resync.total + ' studies.');
          }
          if (s.failed && s.failed.length) {
            words.push(s.failed.length + ' studies refused by GNU Health; open one ' +
                       'to see why, fix the cause and send it again.');
          }
        }
        text('#gnuhealth-status-text', words.join(' '));
      }
    });
  });

  $('#gnuhealth-send').live('click', function (event) {
    var uuid = studyId();
    event.preventDefault();
    if (!uuid) { return; }
    text('#gnuhealth-state-label', 'Sending to GNU Health\u2026');
    text('#gnuhealth-message', '');
    $.ajax({
      url: '../gnuhealth/studies/' + uuid + '/sync',
      type: 'POST',
      data: '{}',
      dataType: 'json',
      cache: false,
      success: function (answer) {
        var words = {
          'pushed': 'Sent to GNU Health.',
          'queued': 'Queued: the plugin is busy and will send it shortly.',
          'rejected': 'GNU Health refused the study: ' + answer.reason +
                      '. Fix the cause, then send it again.',
          'unavailable': 'GNU Health is unreachable: ' + answer.reason +
                         '. The plugin keeps retrying; nothing is lost.',
          'stopped': 'Orthanc is stopping; the study will be sent at the next start.'
        }[answer.result] || ('Answer: ' + answer.result);
        $.ajax({
          url: '../gnuhealth/studies/' + uuid + '/state',
          dataType: 'json',
          cache: false,
          success: function (state) {
            state.message = words + ' ' + state.message;
            if (uuid === studyId()) { show(state); }
          }
        });
      },
      error: function (xhr) {
        show({state: 'unknown', message: 'Could not send the study to GNU Health ' +
              '(HTTP ' + xhr.status + '). Check /gnuhealth/status and Orthanc\'s log.'});
      }
    });
  });
}());
