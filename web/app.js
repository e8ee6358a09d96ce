// app.js: dynmemd's live page. Every second it reads /api/v1/vms,
// /api/v1/counters, /api/v1/status and the new events, redraws the host's figures
// and warnings (libvirt out of reach and a failed reload among them) and the
// configuration's warnings (as `dynmem status` has them) and the table, and
// appends one point to each chart; the VM selected by its name (#vm=NAME) has its
// details shown, all that `dynmem show` prints. The charts' history (the last ten
// minutes) lives in this page only; reloading starts them afresh. Where polls are
// missing (dynmemd did not answer, or the browser held the page back) the lines
// break instead of joining across the gap. Read-only: it never sends anything but GET.
'use strict';

(function () {
  const POLL_MS = 1000;
  const HISTORY_MS = 10 * 60 * 1000;
  const FETCH_TIMEOUT_MS = 5000;
  // samples further apart than this have polls missing between them
  const GAP_MS = FETCH_TIMEOUT_MS + 2 * POLL_MS;
  const EVENTS_SHOWN = 100;
  const MIB = 1024 * 1024;
  const GIB = 1024 * MIB;

  const COLUMNS = [
    ['name', 'name', text],
    ['state', 'state', stateText],
    ['assigned', 'assigned_bytes', size, true],
    ['lent', 'lent_bytes', size, true],   // what of the target is lent as page cache
    ['demand', 'demand_bytes', size, true],
    ['pressure', 'pressure_percent', percent, true],
    ['status', 'status', (v, vm) => statusOf(vm)],
    ['minimum', 'minimum_bytes', size, true],
    ['startup', 'startup_bytes', size, true],
    ['maximum', 'maximum_bytes', size, true],
    ['buffer', 'buffer_percent', percent, true],
    ['weight', 'weight', text, true],
    ['lend', 'lend', onOff],              // whether the VM may borrow page cache
  ];

  // The selected VM's details (its name in the page's address: #vm=NAME), as `dynmem show`
  // prints them and in its order: [label, key, format]. What the VM object has not is left
  // out, and so is a backend member that is null (does not apply to this VM, or not now).
  const DETAILS = [
    ['Name', 'name', text],
    ['State', 'state', stateText],
    ['Dynamic memory', 'dynamic', onOff],
    ['Assigned', 'assigned_bytes', size],
    ['Demand', 'demand_bytes', size],
    ['Pressure', 'pressure_percent', percent],
    ['Status', 'status', text],
    ['Target', 'target_bytes', size],
    ['Lent', 'lent_bytes', size],
    ['Reason', 'reason', text],
    ['Minimum', 'minimum_bytes', size],
    ['Startup', 'startup_bytes', size],
    ['Maximum', 'maximum_bytes', size],
    ['Buffer', 'buffer_percent', percent],
    ['Weight', 'weight', text],
    ['Block', 'block_bytes', size],
    ['Lend', 'lend', onOff],
    ['Defined by', 'origin', text],
    ['Autostart', 'autostart', onOff],
    ['Overridden', 'overrides', settingNames],
    ['Guest sees', 'guest_visible_bytes', size],
    ['Host RSS', 'host_rss_bytes', size],
    ['Problem', 'problem', text],
    ['Last refusal', 'refusal', text],
  ];
  const BACKEND_DETAILS = [
    ['Backend', 'name', text],
    ['Demand from', 'signal', text],
    ['Guest agent', 'agent_state', text],
    ['Agent protocol', 'agent_protocol_version', text],
    ['Agent can', 'agent_capabilities', text],
    ['Process', 'pid', text],
    ['Accelerator', 'accelerator', text],
    ['Version', 'version', text],
    ['Machine', 'machine', text],
    ['Resizing', 'resizing', onOff],
  ];

  const page = {
    polls: 0,
    updated: null,       // when the figures shown were read (ms), null before the first
    eventsSince: 0,
    missed: false,       // a poll failed since the last sample
    host: [],            // [Date, available MiB, assigned MiB]
    history: new Map(),  // VM name -> [[Date, assigned MiB, demand MiB], ...]
    charts: new Map(),   // VM name -> {box, graph}
    hostGraph: null,
    vms: null,           // the VMs last read
  };

  // settings by the names `dynmem set` takes: "buffer_percent" is --buffer; none for []
  function settingNames(v) {
    if (!Array.isArray(v) || v.length === 0) return 'none';
    return v.map((n) => String(n).replace(/_(bytes|percent)$/, '')).join(', ');
  }

  function text(v) {
    return v === null || v === undefined ? '-' : String(v);
  }

  // the status, or "problem" when the VM's settings cannot be used (a libvirt domain's
  // bad metadata: it is not balanced), as `dynmem list` has it
  function statusOf(vm) {
    return typeof vm.problem === 'string' ? 'problem' : text(vm.status);
  }

  // a switch, as `dynmem show` prints it
  function onOff(v) {
    return v === true ? 'on' : v === false ? 'off' : '-';
  }

  // the state, and a live migration under way: "running (outgoing)"
  function stateText(v, vm) {
    return text(v) + (vm && vm.migration ? ' (' + vm.migration + ')' : '');
  }

  function size(bytes) {
    if (bytes === null || bytes === undefined) return '-';
    if (bytes >= GIB) return trim(bytes / GIB) + ' GiB';
    if (bytes >= MIB) return Math.round(bytes / MIB) + ' MiB';
    if (bytes >= 1024) return trim(bytes / 1024) + ' KiB';
    return bytes + ' B';
  }

  function trim(x) {
    return String(Math.round(x * 100) / 100);
  }

  // a duration as `dynmem status` prints it: 800ms, 1.5s, 90s, 2m, 1h
  function duration(ms) {
    if (typeof ms !== 'number') return '-';
    if (ms < 1000) return ms + 'ms';
    if (ms < 60000 || ms % 1000 !== 0) return ms / 1000 + 's';
    if (ms % 3600000 === 0) return ms / 3600000 + 'h';
    if (ms % 60000 === 0) return ms / 60000 + 'm';
    return ms / 1000 + 's';
  }

  function percent(p) {
    return p === null || p === undefined ? '-' : Math.round(p) + ' %';
  }

  // 17:29:00, whatever the locale's 12-hour habits
  function clock(ms) {
    return new Date(ms).toTimeString().slice(0, 8);
  }

  function mib(bytes) {
    return bytes === null || bytes === undefined ? null : bytes / MIB;
  }

  async function get(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const r = await fetch(path, {cache: 'no-store', signal: ctl.signal});
      if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
      return await r.json();
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- the header and the table ----

  function showHost(host) {
    const set = (id, v) => { document.getElementById(id).textContent = v; };
    set('host-memory', size(host.memory_bytes));
    set('host-assigned', size(host.assigned_bytes));
    set('host-available', size(host.available_bytes));
    set('host-pressure', percent(host.pressure_percent));
    const m = host.migrations;
    const moving = m && (m.arriving || m.leaving)
      ? ', ' + m.arriving + ' arriving, ' + m.leaving + ' leaving' : '';
    set('host-vms', host.vms + ' (' + host.running + ' running' + moving + ')');
    // [peer] sections: each peer's state, what it has available for balancing, and why
    // it could not be asked (as `dynmem status` has it)
    const peers = host.peers || [];
    document.getElementById('host-peers-box').hidden = peers.length === 0;
    set('host-peers', peers.map((p) => p.name + ' ' + p.state +
      (typeof p.available_for_balancing_bytes !== 'number' ? ''
        : ' (' + size(p.available_for_balancing_bytes) + ' free)') +
      (typeof p.error === 'string' ? ': ' + p.error : '')).join(', '));
    // the relief rule: what `dynmem status` says of it
    const r = host.relief;
    const relief = r && r.enabled === true;
    document.getElementById('host-relief-box').hidden = !relief;
    if (relief) {
      set('host-relief', (r.short ? 'short of memory now' : 'not short') +
        (r.short_for_ms > 0 ? ' (' + size(r.short_bytes) + ' for ' +
          duration(r.short_for_ms) + ')' : '') +
        '; ' + r.moves + ' moves (' + r.done + ' done, ' + r.failed + ' failed), ' +
        r.no_room + ' without room' +
        (typeof r.moving === 'string' ? '; moving ' + r.moving + ' now' : '') +
        (typeof r.last === 'string' ? '; last: ' + r.last : ''));
    }
    // what needs the operator, with dynmemd's reason (as text: it names paths)
    const warn = (id, why) => {
      document.getElementById(id + '-box').hidden = typeof why !== 'string';
      set(id, typeof why === 'string' ? why : '-');
    };
    // the VMs' owner (libvirt) cannot be reached: why, as the log said it; the VMs keep
    // their sizes until it answers
    warn('host-backend', typeof host.backend_error === 'string' ? host.backend_error : null);
    warn('host-overcommit', host.overcommitted ? host.overcommit_error : null);
    warn('host-state', host.state_saved === false ? host.state_error : null);
    // a reload that failed: the file on disk was refused and the one read before stays
    // in force (its warnings too); gone at the next reload that works
    warn('host-reload', typeof host.reload_error === 'string'
      ? host.reload_error + '; the configuration in force is the one read before' : null);
    showConfigWarnings(host);
  }

  // The warnings of the configuration in force, as `dynmem status` has them: how many,
  // the first ones (FILE:LINE: warning: ...) a line each, and how many more the log has.
  // As text: they quote the file, which may hold anything.
  function showConfigWarnings(host) {
    const list = Array.isArray(host.config_warnings) ? host.config_warnings : [];
    const total = typeof host.config_warning_count === 'number' ? host.config_warning_count : 0;
    const more = total - list.length;
    document.getElementById('config-warnings').hidden = total <= 0;
    document.getElementById('config-warnings-title').textContent = total <= 0 ? ''
      : total + ' warning' + (total === 1 ? '' : 's') + ' in the configuration in force:';
    document.getElementById('config-warnings-list').replaceChildren(...list.map((w) => {
      const li = document.createElement('li');
      li.textContent = String(w);
      return li;
    }));
    const p = document.getElementById('config-warnings-more');
    p.hidden = more <= 0;
    p.textContent = more > 0 ? 'and ' + more + ' more in the log' : '';
  }

  // the VM whose details are shown: #vm=NAME in the page's address, null for none
  function selected() {
    const m = /^#vm=(.+)$/.exec(location.hash);
    if (!m) return null;
    try {
      return decodeURIComponent(m[1]);
    } catch (e) {
      return null;
    }
  }

  function showVms(vms) {
    const body = document.querySelector('#vms tbody');
    const rows = new Map();
    for (const tr of body.querySelectorAll('tr')) rows.set(tr.dataset.vm, tr);
    for (const vm of vms) {
      let tr = rows.get(vm.name);
      rows.delete(vm.name);
      if (!tr) {
        tr = document.createElement('tr');
        tr.dataset.vm = vm.name;
        for (const [cls, , , num] of COLUMNS) {
          const td = document.createElement('td');
          td.className = cls + (num ? ' num' : '');
          tr.appendChild(td);
        }
        // the name links to the VM's details
        const a = document.createElement('a');
        a.href = '#vm=' + encodeURIComponent(vm.name);
        tr.children[0].appendChild(a);
      }
      body.appendChild(tr); // keeps the daemon's order (by name)
      COLUMNS.forEach(([cls, key, fmt, num], i) => {
        const td = tr.children[i];
        (i === 0 ? td.firstChild : td).textContent = fmt(vm[key], vm);
        td.className = cls + (num ? ' num' : '') + (cls === 'status' ? ' status-' + statusOf(vm) : '');
      });
      tr.classList.toggle('off', vm.state !== 'running' && vm.state !== 'stopping');
      tr.classList.toggle('selected', vm.name === selected());
    }
    for (const tr of rows.values()) tr.remove();
    document.getElementById('no-vms').hidden = vms.length > 0;
    showDetails(vms);
  }

  // The selected VM's details, every one as text (names, refusals and problems come from
  // guests, backends and libvirt's XML: never markup).
  function showDetails(vms) {
    const name = selected();
    const vm = name === null ? null : vms.find((v) => v.name === name);
    const box = document.getElementById('details');
    const note = document.getElementById('no-details');
    box.hidden = !vm;
    note.textContent = name === null ? 'Select a VM by its name: its details show here.'
      : 'No VM ' + name + ' (any more).';
    note.hidden = !!vm;
    if (!vm) return;
    document.getElementById('details-name').textContent = vm.name;
    const list = document.getElementById('details-list');
    const items = [];
    const add = (label, value) => {
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.textContent = label;
      dd.textContent = value;
      items.push(dt, dd);
    };
    for (const [label, key, fmt] of DETAILS) {
      // before the refusal, as dynmem show has it: the file's values that wait for the
      // VM to be off (handed back by dynmem set --reset, or refused at a reload)
      if (key === 'refusal' && Array.isArray(vm.reset_pending) && vm.reset_pending.length) {
        add('Waits for off', settingNames(vm.reset_pending) + " (the file's values once the VM is off)");
      }
      if (key in vm && !(key === 'refusal' && vm.refusal === null)) add(label, fmt(vm[key], vm));
    }
    const b = vm.backend;
    if (b && typeof b === 'object') {
      for (const [label, key, fmt] of BACKEND_DETAILS) {
        if (b[key] !== null && b[key] !== undefined) add(label, fmt(b[key]));
      }
      // what the backend chose from what its hypervisor offers: NAME=VALUE (WHY)
      for (const c of b.choices || []) {
        const words = String(c.value).includes(' ');
        add('Chosen', c.name + (words ? ' ' : '=') + c.value + (c.why ? ' (' + c.why + ')' : ''));
      }
      if (typeof b.offers === 'string') add('Also offered', b.offers);
    }
    list.replaceChildren(...items);
  }

  // ---- charts ----

  function prune(rows, now) {
    while (rows.length && now - rows[0][0] > HISTORY_MS) rows.shift();
  }

  // Polls missing since the last sample: a row without values between them, where
  // dygraphs breaks the lines (connectSeparatedPoints is off).
  function markGap(rows, now, missed) {
    const last = rows.length ? rows[rows.length - 1] : null;
    if (!last || (!missed && now - last[0] <= GAP_MS)) return;
    rows.push([new Date((last[0].getTime() + now.getTime()) / 2)].concat(
        new Array(last.length - 1).fill(null)));
  }

  function chartOptions(labels, colors) {
    return {
      labels: labels,
      colors: colors,
      ylabel: 'MiB',
      legend: 'always',
      labelsSeparateLines: false,
      includeZero: true,
      strokeWidth: 1.6,
      axisLabelWidth: 64,
      connectSeparatedPoints: false,
      axes: {
        x: {
          pixelsPerLabel: 90,
          axisLabelFormatter: (d) => clock(d),
          valueFormatter: (ms) => clock(ms),
        },
        y: {valueFormatter: (v) => size(v * MIB)},
      },
    };
  }

  function drawHost(counters, now, missed) {
    const b = counters.balancer;
    const assigned = Object.values(counters.vms).reduce((s, c) => s + c.physical_memory_bytes, 0);
    markGap(page.host, now, missed);
    page.host.push([now, mib(b.available_memory_bytes), mib(assigned)]);
    prune(page.host, now);
    if (!window.Dygraph) return;
    if (!page.hostGraph) {
      page.hostGraph = new Dygraph(document.getElementById('host-chart'), page.host,
          chartOptions(['Time', 'Available', 'Assigned to VMs'], ['#2e7d32', '#1565c0']));
    } else {
      page.hostGraph.updateOptions({file: page.host});
    }
  }

  function chartFor(name) {
    let c = page.charts.get(name);
    if (c) return c;
    const box = document.createElement('div');
    box.className = 'chart-box';
    box.dataset.vm = name;
    const h = document.createElement('h3');
    h.textContent = name;
    const div = document.createElement('div');
    div.className = 'chart';
    div.dataset.vm = name;
    box.append(h, div);
    const all = document.getElementById('charts');
    const after = [...all.children].find((x) => x.dataset.vm > name);
    all.insertBefore(box, after || null);
    c = {box: box, div: div, graph: null};
    page.charts.set(name, c);
    return c;
  }

  function drawVms(vms, now, missed) {
    const seen = new Set();
    for (const vm of vms) {
      seen.add(vm.name);
      const running = vm.state === 'running' || vm.state === 'stopping';
      let rows = page.history.get(vm.name);
      if (!rows && !running) continue;
      if (!rows) page.history.set(vm.name, rows = []);
      markGap(rows, now, missed);
      rows.push([now, running ? mib(vm.assigned_bytes) : null,
                 running ? mib(vm.demand_bytes) : null]);
      prune(rows, now);
      if (!window.Dygraph) continue;
      const c = chartFor(vm.name);
      if (!c.graph) {
        c.graph = new Dygraph(c.div, rows,
            chartOptions(['Time', 'Assigned', 'Demand'], ['#1565c0', '#e65100']));
      } else {
        c.graph.updateOptions({file: rows});
      }
    }
    for (const [name, c] of page.charts) {
      if (seen.has(name)) continue;
      if (c.graph) c.graph.destroy();
      c.box.remove();
      page.charts.delete(name);
      page.history.delete(name);
    }
    document.getElementById('no-charts').hidden = page.charts.size > 0 || !window.Dygraph;
    document.getElementById('no-library').hidden = !!window.Dygraph;
  }

  // ---- events ----

  function showEvents(reply) {
    const list = document.getElementById('events');
    if (reply.dropped > 0) addEvent(list, Date.now(), 'dropped',
                                    reply.dropped + ' events not shown (the page fell behind)');
    for (const ev of reply.events) addEvent(list, ev.time_ms, ev.kind, ev.text);
    while (list.children.length > EVENTS_SHOWN) list.lastChild.remove();
    page.eventsSince = reply.next;
  }

  function addEvent(list, ms, kind, what) {
    const li = document.createElement('li');
    li.className = kind;
    const t = document.createElement('time');
    const d = new Date(ms);
    t.dateTime = d.toISOString();
    t.textContent = clock(ms);
    li.append(t, document.createTextNode(what));
    list.insertBefore(li, list.firstChild);
  }

  // ---- the loop ----

  // While dynmemd does not answer, the figures shown are the last ones read: the page
  // says how old they are and greys them out (body.stale).
  function connection(ok, why) {
    const p = document.getElementById('connection');
    if (ok) page.updated = Date.now();
    p.textContent = ok ? 'updated ' + clock(page.updated)
      : 'dynmemd not answering: ' + why +
        (page.updated === null ? '' : '; figures from ' + clock(page.updated));
    p.classList.toggle('lost', !ok);
    document.body.classList.toggle('stale', !ok);
  }

  async function poll() {
    try {
      const [vms, counters, host, events] = await Promise.all([
        get('/api/v1/vms'), get('/api/v1/counters'), get('/api/v1/status'),
        get(page.polls ? '/api/v1/events?since=' + page.eventsSince : '/api/v1/events?last=50'),
      ]);
      const now = new Date();
      showHost(host);
      page.vms = vms;
      showVms(vms);
      drawHost(counters, now, page.missed);
      drawVms(vms, now, page.missed);
      page.missed = false;
      showEvents(events);
      page.polls++;
      document.body.dataset.polls = String(page.polls);
      connection(true);
    } catch (e) {
      page.missed = true;
      connection(false, e.message);
    }
    setTimeout(poll, POLL_MS);
  }

  window.addEventListener('hashchange', () => {
    for (const tr of document.querySelectorAll('#vms tbody tr')) {
      tr.classList.toggle('selected', tr.dataset.vm === selected());
    }
    if (page.vms) showDetails(page.vms);
  });

  poll();
})();
