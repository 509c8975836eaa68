// CLIChat browser client (v2): logs in to a Secure Server over SAUTH2 (or as a bot) and chats.
// In an open room (the server's "SAUTH2": false, announced at /app/server.json) a person logs
// in with a name alone.
//
// Served by the server itself from /app/app.js under a Content-Security-Policy that allows no
// inline script. Every name and message goes into the page as text (textContent) or as
// elements built here (links), never as HTML.
// Tokens live only in memory and in the form fields: never in the URL, never in storage.
//
// Extensions: the first frame asks for "history" and "presence" (`caps`). A server that grants
// them sends, right after `id`, the messages said before (shown set apart, between "Earlier
// messages" and "Now") and the member list (beside the chat, or behind the People button on a
// phone), which joins and leaves then keep current. Servers that do not know `caps` ignore it.
//
// Resume: the page also asks for "resume". A server that grants it sends a `session` frame with
// a resume token, kept in one variable of this closure only (never in storage, a cookie, the
// URL or the page). When the connection is lost (closed without a close frame, 1001, or 1012
// "server restarting"), the page says "reconnecting…", keeps what is being typed, and tries
// again with exponential backoff and jitter, sending `resume` instead of a login; the messages
// missed meanwhile come back set apart ("N messages while you were away"). A refused resume
// goes back to the login view; the window the server gave passing ends the tries. Leave closes
// the socket with a close frame, so that the server does not hold the session.
'use strict';

(function () {
  /** The server's message limit until it tells us otherwise (its default). */
  const DEFAULT_LIMIT = 200;
  /** What the server says of itself before anyone logs in. */
  const SERVER_INFO_URL = '/app/server.json';
  /** How long to wait for it before logging in as today (SAUTH2). */
  const SERVER_INFO_TIMEOUT_MS = 5000;
  /** The page's title; an unread count goes in front of it while the tab is hidden. */
  const TITLE = 'CLIChat';
  /** Nick colours: the CSS classes nick-0 to nick-7 (see app.css). */
  const NICK_COLOURS = 8;
  /** The protocol extensions this page asks for in its first frame. */
  const CAPS = ['history', 'presence', 'resume'];
  /** Reconnecting after a lost connection: the first wait, doubling up to the longest. */
  const RECONNECT_FIRST_MS = 250;
  const RECONNECT_MAX_MS = 10000;
  /** Each wait is scaled by a random factor in [1 - JITTER, 1 + JITTER]. */
  const RECONNECT_JITTER = 0.5;
  /** Close codes of a lost connection that a resume may take back: no close frame, going away,
   * and "server restarting; resume". */
  const RESUMABLE_CLOSES = [1006, 1001, 1012];

  const $ = (id) => document.getElementById(id);
  const ui = {
    whoami: $('whoami'),
    membersToggle: $('members-toggle'),
    members: $('members'),
    membersCount: $('members-count'),
    membersList: $('members-list'),
    notify: $('notify'),
    leave: $('leave'),
    loginView: $('login-view'),
    openNote: $('open-note'),
    loginForm: $('login-form'),
    kindUser: $('kind-user'),
    kindBot: $('kind-bot'),
    userFields: $('user-fields'),
    botFields: $('bot-fields'),
    username: $('username'),
    usernameHint: $('username-hint'),
    tokenFields: $('token-fields'),
    token: $('token'),
    botname: $('botname'),
    bottoken: $('bottoken'),
    loginError: $('login-error'),
    connect: $('connect'),
    loginBack: $('login-back'),
    tokenView: $('token-view'),
    tokenNote: $('token-note'),
    tokenLink: $('token-link'),
    tokenForm: $('tokenauth-form'),
    tempToken: $('temp-token'),
    tokenError: $('tokenauth-error'),
    tokenSubmit: $('tokenauth-submit'),
    tokenCancel: $('tokenauth-cancel'),
    chatView: $('chat-view'),
    messages: $('messages'),
    disconnected: $('disconnected'),
    disconnectedText: $('disconnected-text'),
    reconnect: $('reconnect'),
    reconnecting: $('reconnecting'),
    reconnectingText: $('reconnecting-text'),
    switchLogin: $('switch-login'),
    sendForm: $('send-form'),
    message: $('message'),
    send: $('send'),
    composerNote: $('composer-note'),
    count: $('count'),
    countValue: $('count-value'),
    countLimit: $('count-limit'),
  };

  // What the person typed for the login in progress.
  let creds = null;
  // The login of the last session that got into the room: what "Reconnect" and "Join again"
  // use, whatever was typed since.
  let sessionCreds = null;
  // Where the login in progress was started, and so where its errors show: 'form' (the login
  // view) or 'chat' (Reconnect or Join again, on the chat view's banner).
  let loginFrom = 'form';
  // The live socket; handlers of an older socket check this and do nothing.
  let ws = null;
  // 'login' | 'waiting' (for /app/server.json, to log in) | 'connecting' | 'tokenauth' | 'chat' |
  // 'reconnecting' (a lost connection, being resumed) | 'disconnected'
  let state = 'login';
  let myId = null;
  let myName = '';
  // Matches a mention of this session's name in a message, or null.
  let mentionPattern = null;
  let lastRefusal = null;
  let leaving = false;
  // Whether the page left the room on purpose (Leave): the banner then asks politely.
  let left = false;
  // Whether the temporary token has been sent for the login in progress.
  let tokenSent = false;
  // Set while the page logs in again for a fresh token page after a wrong temporary token.
  let freshPageAfter = null;
  let limit = DEFAULT_LIMIT;
  // Where `limit` comes from: 'default' (nothing heard: the server decides, and a refusal
  // teaches), 'announced' (by /app/server.json) or 'learned' (from a refusal). An announced or
  // learned limit stops an over-long message here, before it is sent.
  let limitSource = 'default';
  // An open room: people log in with a name alone. False until the server says so.
  let openRoom = false;
  // The longest name the server announced, or null.
  let maxNameLength = null;
  // Whether /app/server.json has answered (or failed); a login waits for it.
  let infoSettled = false;
  // Messages from others while the tab was hidden.
  let unread = 0;
  // Whether the person turned desktop notifications of mentions on (never asked on load).
  let notifyMentions = false;
  // The extensions the server granted in its answer to `caps` (none until it answers).
  let granted = [];
  // Who is in the room, by name, once the server sent a member list; null before (and always
  // with a server that does not grant "presence").
  let members = null;

  // ---- Resume (extension "resume"): memory only ----

  // The token that takes this session back once its connection is lost, from the newest
  // `session` frame; null when there is none. Never stored, never shown.
  let resumeToken = null;
  // How long the server holds a lost session, in ms (the `session` frame's `expires_in`).
  let resumeWindowMs = 0;
  // The newest message number seen (history, numbered messages, `session`); 0 before any.
  let lastSeq = 0;
  // When the connection was lost (Date.now()), while reconnecting.
  let lostAt = 0;
  // Tries made since the loss.
  let reconnectTries = 0;
  // The timer of the next try, and the one that gives up when the window has passed.
  let reconnectTimer = null;
  let giveUpTimer = null;
  // The last close seen while reconnecting, for the details when giving up.
  let lastClose = null;
  // Set between a resume's `id` and its `session`: the `history` then is what was missed.
  let resuming = false;

  // ---- Refusals and errors, in plain words (the exact text is one click away) ----

  const TOO_LONG = /^message is too long \[(\d+)\/(\d+)\]$/;

  function explain(text) {
    const tooLong = TOO_LONG.exec(text);
    if (tooLong) {
      return 'That message was too long: ' + tooLong[1] + ' characters, and the limit is ' +
        tooLong[2] + '. It was not delivered.';
    }
    switch (text) {
      case 'Token refused':
        if (creds && creds.kind === 'user' && !creds.token) {
          return 'This room is no longer open: it now needs an access token. Enter the one ' +
            'the server\'s owner gave you.';
        }
        return 'The server refused your token. Check it, or it may be in use by another connection.';
      case 'bot refused':
        return 'The server refused the bot name or bot token.';
      case 'refused':
        return 'The server refused the temporary token. Connect again for a new token page.';
      case 'Invalid username.':
        return 'That username is not allowed: no spaces at either end, no invisible characters, ' +
          'and it may not start with [BOT].';
      case 'username is too long':
        return maxNameLength === null ? 'That username is too long.'
          : 'That username is too long: the limit is ' + maxNameLength + ' characters.';
      case 'Username already taken.':
        return 'Someone in the room already uses that name.';
      case 'No profanity allowed!':
        return 'The server does not allow a word in that.';
      case 'No Empty Messages allowed!':
        return 'The server does not accept empty messages.';
      case 'Token authentication timed out.':
        return 'The temporary token came too late. Connect again for a new token page.';
      case 'Authentication timed out.':
        return 'The login took too long.';
      case 'Resume refused; log in again.':
        return 'The connection was lost, and the server could not take your session back ' +
          '(the session ended, or it waited too long). Log in again.';
      case 'Too many login attempts; try again later.':
        return 'Too many login attempts from your address. Wait a minute and try again.';
      case 'You are sending messages too fast; slow down.':
        return 'You are sending messages too fast; that one was not delivered.';
      case 'Flooding; disconnected.':
        return 'You sent too many messages too fast, so the server disconnected you.';
      case 'Your token was revoked.':
        return 'The server\'s owner withdrew your access token.';
      default:
        if (text.startsWith('banned until ')) return 'You are banned from this room for now.';
        if (text.startsWith('kicked: ')) return 'A moderator removed you from the room.';
        return 'The server refused.';
    }
  }

  /** What a WebSocket close code means, for the technical details. */
  const CLOSE_CODES = {
    1000: 'normal closure',
    1001: 'going away: the server is stopping, or the connection stopped answering',
    1002: 'protocol error',
    1005: 'no code given',
    1006: 'closed without a close frame: the network or the server dropped it',
    1007: 'invalid data',
    1008: 'policy violation',
    1009: 'message too big',
    1011: 'server error',
    1012: 'service restart: the server is restarting',
  };

  /** The technical line of a closed connection. */
  function closeDetail(close) {
    if (!close) return null;
    let line = 'WebSocket closed with code ' + close.code;
    if (CLOSE_CODES[close.code]) line += ' (' + CLOSE_CODES[close.code] + ')';
    if (close.reason) line += ', reason “' + close.reason + '”';
    return line + '.';
  }

  function serverSaid(text) {
    return 'Server said: “' + text + '”';
  }

  /** A `details` element holding the exact technical texts, closed until clicked. */
  function detailsOf(lines) {
    const details = el('details', 'tech');
    details.append(el('summary', null, 'Details'));
    for (const line of lines) details.append(el('span', 'tech-line', line));
    return details;
  }

  /** Fills `box` with a sentence for people and, one click away, the technical texts. */
  function showProblem(box, plain, technical) {
    const lines = (technical || []).filter((line) => line);
    box.replaceChildren(el('span', 'plain', plain));
    if (lines.length) box.append(detailsOf(lines));
    box.hidden = false;
  }

  function showError(box, text) {
    showProblem(box, text, null);
  }

  function clearError(box) {
    box.replaceChildren();
    box.hidden = true;
  }

  // ---- DOM helpers: text only ----

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** A <time> of `when` (a Date; now if not given), as the time of day. */
  function timeNode(when) {
    const now = when || new Date();
    const node = el('time', 'when',
      now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    node.dateTime = now.toISOString();
    node.title = now.toLocaleString();
    return node;
  }

  /** Appends one entry to the message list, keeping the view at the bottom if it was there. */
  function append(li) {
    const list = ui.messages;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(li);
    if (atBottom) list.scrollTop = list.scrollHeight;
    return li;
  }

  // ---- Nick colours: FNV-1a (32 bits) over the name's UTF-8 bytes, as the terminal client ----

  const utf8 = new TextEncoder();

  /** The index (0 to 7) of a name's colour. */
  function nickColour(name) {
    let hash = 2166136261;
    for (const byte of utf8.encode(name)) {
      hash = Math.imul(hash ^ byte, 16777619) >>> 0;
    }
    return hash % NICK_COLOURS;
  }

  // ---- Links: http(s) URLs only, built as elements ----

  // A URL starts at a word boundary with http:// or https://, and runs to white space or a
  // character that cannot be in one; trailing punctuation is trimmed below.
  const URL_IN_TEXT = /\bhttps?:\/\/[^\s<>"'`{}|\\^]+/gi;
  const CLOSERS = { ')': '(', ']': '[' };

  function count(text, char) {
    return text.split(char).length - 1;
  }

  /** The URL without the punctuation that ends the sentence around it. */
  function trimUrl(url) {
    for (;;) {
      const last = url.slice(-1);
      if (CLOSERS[last]) {
        // Keep a closing bracket that closes one of the URL's own (as Wikipedia's have).
        if (count(url, CLOSERS[last]) >= count(url, last)) return url;
      } else if (!'.,;:!?*'.includes(last)) {
        return url;
      }
      url = url.slice(0, -1);
    }
  }

  /** An http(s) URL as the browser reads it, or null. */
  function webUrl(text) {
    let url;
    try {
      url = new URL(text);
    } catch (e) {
      return null;
    }
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname ? url : null;
  }

  /** Appends `text` to `parent` as text nodes, with its http(s) URLs as links. */
  function appendLinked(parent, text) {
    let at = 0;
    for (const match of text.matchAll(URL_IN_TEXT)) {
      const shown = trimUrl(match[0]);
      const url = webUrl(shown);
      if (!url) continue;
      if (match.index > at) parent.append(text.slice(at, match.index));
      const link = el('a', 'link', shown);
      link.href = url.href;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      parent.append(link);
      at = match.index + shown.length;
    }
    if (at < text.length) parent.append(text.slice(at));
  }

  // ---- Mentions ----

  function escapeRegExp(text) {
    return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
  }

  /** A pattern for `names` as whole words (not inside a longer word), in any case. */
  function mentionOf(names) {
    const alternatives = names.filter((name) => name).map(escapeRegExp).join('|');
    const edge = '[\\p{L}\\p{M}\\p{N}_]';
    return new RegExp('(?<!' + edge + ')(?:' + alternatives + ')(?!' + edge + ')', 'iu');
  }

  function mentionsMe(text) {
    return !!mentionPattern && mentionPattern.test(text);
  }

  // ---- The message list ----

  function addMessage(name, text, own) {
    const li = el('li', own ? 'msg own' : 'msg');
    const who = el('span', 'name nick-' + nickColour(name), name);
    if (own) who.append(el('span', 'you', ' (you)'));
    const body = el('span', 'text');
    appendLinked(body, text);
    li.append(timeNode(), who, body);
    if (!own && mentionsMe(text)) {
      li.classList.add('mention');
      li.append(el('span', 'visually-hidden', ' (mentions you)'));
    }
    return append(li);
  }

  function addEvent(kind, text) {
    const li = el('li', 'event ' + kind);
    li.append(timeNode(), el('span', 'text', text));
    return append(li);
  }

  function addRefusal(text) {
    const li = el('li', 'event refusal');
    li.append(timeNode(), el('span', 'text', explain(text)), document.createTextNode(' '),
      detailsOf([serverSaid(text)]));
    return append(li);
  }

  /** A message from someone else: listed, counted while the tab is hidden, and notified of. */
  function received(name, text) {
    const li = addMessage(name, text, false);
    if (document.hidden) {
      unread += 1;
      updateTitle();
    }
    if (li.classList.contains('mention')) notifyMention(name, text);
  }

  // ---- The room's history (extension "history") ----

  /** A line across the list: "Earlier messages", "Now". */
  function addDivider(text) {
    const li = el('li', 'divider');
    li.setAttribute('role', 'separator');
    li.append(el('span', 'divider-text', text));
    return append(li);
  }

  /** Whether `entry` is a history entry: [SEQ, TIME_MS, NAME, TEXT]. */
  function historyEntry(entry) {
    return Array.isArray(entry) && Number.isSafeInteger(entry[0]) &&
      Number.isSafeInteger(entry[1]) && typeof entry[2] === 'string' &&
      typeof entry[3] === 'string';
  }

  /**
   * The messages said before this page joined, oldest first, set apart from live ones: no
   * highlight, no notification, not counted as unread, each at the time it was said.
   */
  function addHistory(entries, complete) {
    const valid = entries.filter(historyEntry);
    if (valid.length === 0) return;
    addDivider(complete ? 'Earlier messages' : 'Earlier messages (older ones were not kept)');
    addEntries(valid);
  }

  /**
   * After a resume: the messages said while the connection was lost, oldest first, set apart
   * as history is, under a divider that counts them.
   */
  function addMissed(entries, complete) {
    const valid = entries.filter(historyEntry);
    if (valid.length === 0) {
      if (!complete) addEvent('self', 'Some messages from while you were away were not kept.');
      return;
    }
    let title = valid.length === 1 ? '1 message while you were away'
      : valid.length + ' messages while you were away';
    if (!complete) title += ' (some older ones were not kept)';
    addDivider(title).classList.add('missed');
    addEntries(valid);
  }

  /** History entries as dimmed messages at the time each was said, then a "Now" divider. */
  function addEntries(valid) {
    for (const [seq, timeMs, name, text] of valid) {
      noteSeq(seq);
      const li = el('li', 'msg earlier');
      const body = el('span', 'text');
      appendLinked(body, text);
      li.append(timeNode(new Date(timeMs)), el('span', 'name nick-' + nickColour(name), name),
        body);
      append(li);
    }
    addDivider('Now');
  }

  /** Remembers `seq` if it is the newest message number seen. */
  function noteSeq(seq) {
    if (Number.isSafeInteger(seq) && seq > lastSeq) lastSeq = seq;
  }

  // ---- Who is in the room (extension "presence") ----

  /** People first, then bots, each by name ignoring case. */
  function memberOrder(a, b) {
    const botA = a.startsWith('[BOT] ');
    const botB = b.startsWith('[BOT] ');
    if (botA !== botB) return botA ? 1 : -1;
    return a.localeCompare(b, undefined, { sensitivity: 'base' }) || (a < b ? -1 : a > b ? 1 : 0);
  }

  /** Shows the member list (or hides the panel and its button when there is none). */
  function renderMembers() {
    const known = members !== null && state === 'chat';
    ui.members.hidden = !known;
    ui.membersToggle.hidden = !known;
    if (!known) {
      setMembersOpen(false);
      ui.membersList.replaceChildren();
      return;
    }
    const names = [...members].sort(memberOrder);
    ui.membersCount.textContent = '(' + names.length + ')';
    ui.membersToggle.textContent = 'People (' + names.length + ')';
    ui.membersList.replaceChildren(...names.map((name) => {
      const li = el('li', 'member');
      li.append(el('span', 'name nick-' + nickColour(name), name));
      if (name === myName) li.append(el('span', 'you', ' (you)'));
      return li;
    }));
  }

  /** On a phone: the member list over the messages, or not. */
  function setMembersOpen(open) {
    ui.members.classList.toggle('open', open);
    ui.membersToggle.setAttribute('aria-expanded', String(open));
  }

  // ---- While the tab is hidden: the unread count, and notifications of mentions ----

  function updateTitle() {
    document.title = unread > 0 ? '(' + unread + ') ' + TITLE : TITLE;
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) {
      unread = 0;
      updateTitle();
    }
  });

  function notificationsSupported() {
    return typeof window.Notification === 'function';
  }

  function updateNotifyButton() {
    ui.notify.setAttribute('aria-pressed', String(notifyMentions));
    ui.notify.title = notifyMentions
      ? 'You get a desktop notification when someone mentions you while you are not looking ' +
        'at this page. Click to stop.'
      : 'Get a desktop notification when someone mentions you while you are not looking at ' +
        'this page.';
  }

  /** The toggle: asks the browser for permission the first time it is turned on, never before. */
  async function toggleNotifications() {
    if (!notificationsSupported()) return;
    if (notifyMentions) {
      notifyMentions = false;
      updateNotifyButton();
      return;
    }
    let permission = window.Notification.permission;
    if (permission === 'default') {
      try {
        permission = await window.Notification.requestPermission();
      } catch (e) {
        permission = 'denied';
      }
    }
    notifyMentions = permission === 'granted';
    updateNotifyButton();
    if (!notifyMentions && state === 'chat') {
      addEvent('local', 'This browser does not allow notifications from this page. You can ' +
        'allow them in its site settings, then turn them on here.');
    }
  }

  function notifyMention(name, text) {
    // Only when the person is not looking: the tab hidden, or the window behind another.
    if (!notifyMentions || !notificationsSupported()) return;
    if (!document.hidden && document.hasFocus()) return;
    if (window.Notification.permission !== 'granted') return;
    try {
      const note = new window.Notification(name + ' mentioned you', {
        body: text.length > 200 ? text.slice(0, 200) + '…' : text,
        tag: 'clichat-mention',
      });
      note.onclick = () => {
        window.focus();
        note.close();
      };
    } catch (e) {
      // Some browsers (Chrome on Android) only notify from a service worker: no notification.
    }
  }

  // ---- Views ----

  function show(view) {
    if (state !== 'reconnecting') ui.reconnecting.hidden = true;
    ui.loginView.hidden = view !== 'login';
    ui.tokenView.hidden = view !== 'token';
    ui.chatView.hidden = view !== 'chat';
  }

  function setBusy(button, busy, label) {
    button.disabled = busy;
    button.textContent = label;
  }

  /** The login view; `plain` (with its `technical` details) says what went wrong, if anything. */
  function toLogin(plain, technical) {
    state = 'login';
    ws = null;
    renderMembers();
    show('login');
    ui.whoami.hidden = true;
    ui.leave.hidden = true;
    ui.notify.hidden = true;
    // Back to the room's banner (and its Reconnect), if there was a room.
    ui.loginBack.hidden = !sessionCreds;
    setBusy(ui.connect, false, 'Connect');
    if (plain) showProblem(ui.loginError, plain, technical);
    else clearError(ui.loginError);
    if (ui.kindBot.checked) ui.botname.focus();
    else if (!openRoom && ui.username.value && !ui.token.value) ui.token.focus();
    else ui.username.focus();
  }

  function toTokenView(link) {
    state = 'tokenauth';
    tokenSent = false;
    ui.tokenLink.href = link;
    ui.tokenLink.classList.remove('disabled');
    ui.tempToken.value = '';
    ui.tempToken.disabled = false;
    clearError(ui.tokenError);
    if (freshPageAfter) {
      showProblem(ui.tokenNote, 'That token was not accepted, so here is a new token page. ' +
        'Open it, and paste the new token it shows.', [serverSaid(freshPageAfter)]);
      freshPageAfter = null;
    } else {
      clearError(ui.tokenNote);
    }
    setBusy(ui.tokenSubmit, false, 'Log in');
    show('token');
    ui.tokenLink.focus();
  }

  /** After a wrong temporary token: the same login again, for a new token page. */
  function freshTokenPage(refusal) {
    freshPageAfter = refusal;
    ui.tokenLink.removeAttribute('href');
    ui.tokenLink.classList.add('disabled');
    ui.tempToken.value = '';
    ui.tempToken.disabled = true;
    clearError(ui.tokenError);
    showProblem(ui.tokenNote, 'That token was not accepted. Getting a new token page…',
      [serverSaid(refusal)]);
    setBusy(ui.tokenSubmit, true, 'Getting a new page…');
    connect();
  }

  function toChat() {
    const rejoined = loginFrom === 'chat';
    const how = !rejoined ? 'You joined as ' : left ? 'You joined again as ' : 'Reconnected as ';
    state = 'chat';
    sessionCreds = creds;
    left = false;
    show('chat');
    ui.disconnected.hidden = true;
    ui.message.disabled = false;
    ui.send.disabled = false;
    ui.whoami.textContent = 'Signed in as ' + myName;
    ui.whoami.hidden = false;
    ui.leave.hidden = false;
    ui.notify.hidden = !notificationsSupported();
    const names = [myName];
    if (creds.kind === 'bot') names.push(creds.botname);
    mentionPattern = mentionOf(names);
    addEvent('self', how + myName + '.');
    updateCount();
    ui.message.focus();
  }

  /** The chat view without a connection: what happened, and a way back in. */
  function toDisconnected(plain, technical, eventText) {
    state = 'disconnected';
    ws = null;
    renderMembers();
    show('chat');
    ui.message.disabled = true;
    ui.send.disabled = true;
    ui.leave.hidden = true;
    ui.notify.hidden = true;
    ui.whoami.textContent = 'Disconnected (was ' + myName + ')';
    showBanner(false, 'Reconnect');
    showProblem(ui.disconnectedText, plain, technical);
    addEvent('self', eventText);
    ui.reconnect.focus();
  }

  /** The chat view after Leave: not an error, and the way back in is one click. */
  function toLeft() {
    state = 'disconnected';
    ws = null;
    renderMembers();
    left = true;
    show('chat');
    ui.message.disabled = true;
    ui.send.disabled = true;
    ui.leave.hidden = true;
    ui.notify.hidden = true;
    ui.whoami.textContent = 'Not in the room (was ' + myName + ')';
    showBanner(true, 'Join again');
    ui.disconnectedText.replaceChildren(el('span', 'plain', 'You left. Join again?'));
    addEvent('self', 'You left.');
    ui.reconnect.focus();
  }

  /** The banner over the message field: polite (after Leave) or an error. */
  function showBanner(polite, reconnectLabel) {
    ui.disconnected.classList.toggle('error', !polite);
    ui.disconnected.classList.toggle('info', polite);
    ui.disconnected.setAttribute('role', polite ? 'status' : 'alert');
    ui.disconnected.hidden = false;
    setBusy(ui.reconnect, false, reconnectLabel);
  }

  // ---- The connection ----

  function socketUrl() {
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
  }

  function sendFrame(frame) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function connect() {
    if (!creds) return;
    stopReconnecting();
    resumeToken = null;
    resuming = false;
    lastSeq = 0;
    lastRefusal = null;
    leaving = false;
    tokenSent = false;
    myId = null;
    granted = [];
    members = null;
    myName = creds.kind === 'bot' ? '[BOT] ' + creds.botname : creds.username;
    state = 'connecting';
    if (loginFrom === 'form') setBusy(ui.connect, true, 'Connecting…');
    ui.reconnect.disabled = true;
    if (loginFrom === 'chat' && !freshPageAfter) {
      ui.disconnectedText.replaceChildren(el('span', 'plain', 'Connecting…'));
    }

    openSocket(() => {
      // First, before the login: servers that do not know it ignore it, and the login does not
      // wait for an answer.
      sendFrame(['caps', CAPS]);
      if (creds.kind === 'bot') {
        sendFrame(['botauth', { botusername: creds.botname, bottoken: creds.bottoken }]);
      } else if (creds.token) {
        sendFrame(['auth', { username: creds.username, token: creds.token }]);
      } else {
        // An open room: the name alone.
        sendFrame(['auth', { username: creds.username }]);
      }
    });
  }

  /** Opens the live socket; `greet` sends its first frames once it is open. */
  function openSocket(greet) {
    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch (e) {
      connectionEnded({ code: 1006, reason: '' });
      return;
    }
    ws = socket;
    socket.onopen = () => {
      if (ws !== socket) return;
      greet();
    };
    socket.onmessage = (event) => {
      if (ws !== socket || typeof event.data !== 'string') return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (Array.isArray(frame) && typeof frame[0] === 'string') handle(frame);
    };
    socket.onclose = (event) => {
      if (ws !== socket) return;
      connectionEnded({ code: event.code, reason: event.reason });
    };
  }

  function handle(frame) {
    const [kind, a, b, c] = frame;
    switch (kind) {
      case 'caps':
        if ((state === 'connecting' || state === 'tokenauth' || state === 'reconnecting') &&
            Array.isArray(a)) {
          granted = a.filter((name) => typeof name === 'string');
        }
        break;
      case 'history':
        if (state === 'chat' && granted.includes('history') && Array.isArray(a)) {
          if (resuming) addMissed(a, !(b && b.complete === false));
          else addHistory(a, !(b && b.complete === false));
        }
        break;
      case 'session':
        // The token that takes this session back: in memory only.
        if (state === 'chat' && granted.includes('resume') && a && typeof a === 'object' &&
            typeof a.resume === 'string' && a.resume) {
          resumeToken = a.resume;
          resumeWindowMs = positiveInteger(a.expires_in) ? a.expires_in * 1000 : 0;
          noteSeq(a.seq);
          resuming = false;
        }
        break;
      case 'members':
        if (state === 'chat' && Array.isArray(a)) {
          members = new Set(a.filter((name) => typeof name === 'string'));
          renderMembers();
        }
        break;
      case 'authmsg':
        if (state !== 'connecting' || typeof a !== 'string') return;
        {
          const url = webUrl(a);
          if (!url) {
            closeSocket();
            loginFailed('The server sent a token page this page cannot open, so the login ' +
              'cannot go on. Tell the server\'s owner.', ['Token page link: ' + a]);
            return;
          }
          toTokenView(url.href);
        }
        break;
      case 'id':
        if (state === 'reconnecting' && typeof a === 'number') {
          myId = a;
          resumed();
          return;
        }
        if ((state !== 'connecting' && state !== 'tokenauth') || typeof a !== 'number') return;
        myId = a;
        toChat();
        break;
      case 'join':
        if (state === 'chat' && typeof a === 'string') {
          addEvent('join', a + ' joined.');
          if (members !== null) {
            members.add(a);
            renderMembers();
          }
        }
        break;
      case 'disconnect':
        if (state === 'chat' && typeof a === 'string') {
          addEvent('leave', a + ' left.');
          if (members !== null && members.delete(a)) renderMembers();
        }
        break;
      case 'message':
        if (state === 'chat' && typeof a === 'string' && typeof b === 'string') {
          noteSeq(c);
          received(a, b);
        }
        break;
      case 'refusal':
        if (typeof a === 'string') refused(a);
        break;
      default:
        // Unknown frames are room for extensions: ignored.
        break;
    }
  }

  function refused(text) {
    lastRefusal = text;
    if (text === 'Token refused' && creds && creds.kind === 'user' && !creds.token) {
      // The room was open when this page loaded and is not any more: ask for a token again.
      setOpenRoom(false);
    }
    if (state !== 'chat') return; // The close that follows shows it.
    const tooLong = TOO_LONG.exec(text);
    if (tooLong) {
      limit = Number(tooLong[2]);
      limitSource = 'learned';
      updateCount();
      const li = markUndelivered((entry) => entry.dataset.length === tooLong[1]);
      // Give it back to shorten, unless something new is being written.
      if (li && !ui.message.value) {
        ui.message.value = li.querySelector('.text').textContent;
        updateCount();
      }
      lastRefusal = null; // The connection stays.
    } else if (text === 'You are sending messages too fast; slow down.') {
      markUndelivered(() => true);
      lastRefusal = null;
    }
    addRefusal(text);
  }

  /** Marks the newest own message that `matches` and is not marked yet as not delivered. */
  function markUndelivered(matches) {
    const own = ui.messages.querySelectorAll('li.msg.own:not(.undelivered)');
    for (let i = own.length - 1; i >= 0; i--) {
      if (matches(own[i])) {
        own[i].classList.add('undelivered');
        own[i].append(el('span', 'note', 'not delivered'));
        return own[i];
      }
    }
    return null;
  }

  /** Why a connection in the room ended, for people. */
  function closeReason(code) {
    if (lastRefusal) return explain(lastRefusal);
    switch (code) {
      case 1000:
        return 'The server closed the connection.';
      case 1001:
        return 'The server closed the connection: it is shutting down or restarting, ' +
          'or this connection stopped answering.';
      case 1012:
        return 'The server closed the connection: it is restarting.';
      case 1008:
        return 'The server dropped this connection: messages could not reach it fast enough.';
      case 1009:
        return 'The server closed the connection: a message was too big.';
      case 1002:
      case 1007:
        return 'The connection broke off because of a technical fault between this page and ' +
          'the server.';
      default:
        return 'The connection to the server was lost.';
    }
  }

  /** A login that did not get in: its errors go where it was started. */
  function loginFailed(plain, technical) {
    if (loginFrom === 'chat') toDisconnected(plain, technical, 'Reconnecting failed.');
    else toLogin(plain, technical);
  }

  function connectionEnded(close) {
    const was = state;
    const technical = [lastRefusal && serverSaid(lastRefusal), closeDetail(close)];
    if (was === 'chat') {
      if (leaving) toLeft();
      else if (resumeToken && !lastRefusal && RESUMABLE_CLOSES.includes(close.code)) {
        startReconnecting(close);
      } else toDisconnected(closeReason(close.code), technical, 'Disconnected.');
    } else if (was === 'reconnecting') {
      reconnectEnded(close, technical);
    } else if (was === 'connecting' || was === 'tokenauth') {
      if (was === 'tokenauth' && tokenSent && lastRefusal === 'refused') {
        // A wrong temporary token ends that login: start the same one again for a new page.
        freshTokenPage(lastRefusal);
        return;
      }
      freshPageAfter = null;
      let reason;
      if (lastRefusal) reason = explain(lastRefusal);
      else if (was === 'connecting' && close.code === 1006) {
        reason = 'Could not connect to the server, or it is too busy. Try again in a moment.';
      } else reason = 'The connection closed before the login finished. Try again.';
      loginFailed(reason, technical);
    }
  }

  // ---- Resume: a lost connection taken back ----

  /** The connection was lost while in the room, and a resume token is held: try to resume. */
  function startReconnecting(close) {
    state = 'reconnecting';
    ws = null;
    myId = null;
    lostAt = Date.now();
    reconnectTries = 0;
    lastClose = close;
    // What is being typed stays, and can still be typed; it is sent once back.
    ui.send.disabled = true;
    ui.reconnectingText.textContent = 'Connection lost; reconnecting…';
    ui.reconnecting.hidden = false;
    ui.whoami.textContent = 'Reconnecting (as ' + myName + ')…';
    addEvent('self', 'Connection lost; reconnecting…');
    clearTimeout(giveUpTimer);
    giveUpTimer = setTimeout(giveUp, resumeWindowMs);
    scheduleReconnect();
  }

  /** The next try, after an exponential backoff with jitter, within the server's window. */
  function scheduleReconnect() {
    const remaining = lostAt + resumeWindowMs - Date.now();
    if (remaining <= 0) {
      giveUp();
      return;
    }
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** reconnectTries);
    const jitter = 1 - RECONNECT_JITTER + 2 * RECONNECT_JITTER * Math.random();
    reconnectTries += 1;
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(resumeNow, Math.min(base * jitter, remaining));
  }

  /** One try: a new socket that asks for resume and sends the token instead of a login. */
  function resumeNow() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (state !== 'reconnecting' || ws || !resumeToken) return;
    lastRefusal = null;
    granted = [];
    openSocket(() => {
      sendFrame(['caps', CAPS]);
      sendFrame(['resume', { token: resumeToken, since: lastSeq }]);
    });
  }

  /** A try's socket closed before the session was back. */
  function reconnectEnded(close, technical) {
    ws = null;
    lastClose = close;
    if (!lastRefusal) {
      scheduleReconnect();
      return;
    }
    // Refused (the token used, expired or revoked): a new login is the only way back.
    const reason = explain(lastRefusal);
    stopReconnecting();
    resumeToken = null;
    toDisconnected(reason, technical, 'Reconnecting failed.');
    toLogin(reason, technical);
  }

  /** The resume was accepted (`id`): back in the room, nothing lost. */
  function resumed() {
    stopReconnecting();
    state = 'chat';
    // The token is used; the `session` frame that follows brings the next. Until it comes, the
    // `history` is what was missed.
    resumeToken = null;
    resuming = true;
    ui.send.disabled = false;
    ui.whoami.textContent = 'Signed in as ' + myName;
    addEvent('self', 'Reconnected: you are still in the room.');
    renderMembers();
    updateCount();
  }

  /** The server's window has passed (or nothing was ever reachable): stop trying. */
  function giveUp() {
    if (state !== 'reconnecting') return;
    stopReconnecting();
    resumeToken = null;
    closeSocket();
    toDisconnected('The connection was lost, and the server could not be reached again in ' +
      'time.', [closeDetail(lastClose)], 'Reconnecting failed.');
  }

  function stopReconnecting() {
    clearTimeout(reconnectTimer);
    clearTimeout(giveUpTimer);
    reconnectTimer = null;
    giveUpTimer = null;
    ui.reconnecting.hidden = true;
  }

  // Back online: try now rather than at the end of the backoff.
  window.addEventListener('online', () => {
    if (state === 'reconnecting' && !ws) resumeNow();
  });

  function closeSocket() {
    const socket = ws;
    ws = null;
    if (socket) socket.close(1000);
  }

  // ---- The message field ----

  function length(text) {
    // The server counts Unicode scalar values, as the string iterator does.
    return [...text].length;
  }

  /** Whether this page knows the server's limit (announced or learned), so it may enforce it. */
  function limitKnown() {
    return limitSource !== 'default';
  }

  const fieldSizing = typeof CSS !== 'undefined' && CSS.supports('field-sizing', 'content');

  function updateCount() {
    const n = length(ui.message.value);
    ui.countValue.textContent = String(n);
    ui.countLimit.textContent = String(limit);
    const over = n > limit;
    ui.count.classList.toggle('over', over);
    ui.count.title = limitKnown() ? 'The server allows ' + limit + ' characters.'
      : 'Most servers allow ' + limit + ' characters.';
    ui.message.setAttribute('aria-invalid', String(over && limitKnown()));
    if (!over) clearError(ui.composerNote);
    if (!fieldSizing) {
      // Browsers without `field-sizing`: a row per line, up to six.
      ui.message.rows = Math.min(6, ui.message.value.split('\n').length);
    }
  }

  // ---- What the server says of itself: open room or SAUTH2, and its limits ----

  /** Shows the name-only login of an open room, or today's SAUTH2 login. */
  function setOpenRoom(open) {
    openRoom = open;
    ui.openNote.hidden = !open;
    ui.tokenFields.hidden = open;
    ui.token.required = !open;
  }

  function positiveInteger(value) {
    return Number.isSafeInteger(value) && value > 0;
  }

  /** The name field's hint: the limit, and how far over it a name is. */
  function updateNameHint() {
    if (maxNameLength === null) {
      ui.usernameHint.hidden = true;
      return;
    }
    const n = length(ui.username.value);
    const over = n > maxNameLength;
    ui.usernameHint.textContent = over
      ? '(up to ' + maxNameLength + ' characters; this one has ' + n + ')'
      : '(up to ' + maxNameLength + ' characters)';
    ui.usernameHint.classList.toggle('over', over);
    ui.username.setAttribute('aria-invalid', String(over));
    ui.usernameHint.hidden = false;
  }

  /**
   * Reads /app/server.json; on any failure the page stays as it is (SAUTH2, default limits).
   * Read at load, and again on the way back to the login view or into the room, so that a
   * reload of the server's config since is seen.
   */
  async function loadServerInfo() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), SERVER_INFO_TIMEOUT_MS);
    try {
      const response = await fetch(SERVER_INFO_URL, {
        cache: 'no-store',
        credentials: 'same-origin',
        signal: abort.signal,
      });
      if (!response.ok) return;
      const info = await response.json();
      if (!info || typeof info !== 'object') return;
      if (positiveInteger(info.max_username_length)) {
        maxNameLength = info.max_username_length;
        updateNameHint();
      }
      if (positiveInteger(info.max_message_length)) {
        limit = info.max_message_length;
        limitSource = 'announced';
        updateCount();
      }
      if (typeof info.sauth2 === 'boolean' && state !== 'connecting' && state !== 'tokenauth') {
        setOpenRoom(!info.sauth2);
      }
    } catch (e) {
      // Unreachable, slow or not JSON: log in as today.
    } finally {
      clearTimeout(timer);
      infoSettled = true;
    }
  }

  // ---- Events ----

  function syncKind() {
    const bot = ui.kindBot.checked;
    ui.userFields.hidden = bot;
    ui.botFields.hidden = !bot;
  }
  ui.kindUser.addEventListener('change', syncKind);
  ui.kindBot.addEventListener('change', syncKind);
  syncKind();

  let serverInfo = loadServerInfo();

  ui.loginForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (state !== 'login') return;
    if (infoSettled) {
      logIn();
      return;
    }
    // Whether a token is needed is not known yet: wait for the server's answer (or its failure).
    state = 'waiting';
    setBusy(ui.connect, true, 'Connecting…');
    serverInfo.then(() => {
      if (state !== 'waiting') return;
      state = 'login';
      setBusy(ui.connect, false, 'Connect');
      logIn();
    });
  });

  /** Checks the login form and connects. */
  function logIn() {
    clearError(ui.loginError);
    let typed;
    if (ui.kindBot.checked) {
      const botname = ui.botname.value;
      const bottoken = ui.bottoken.value;
      if (!botname) return fieldMissing(ui.botname, 'Enter the bot name.');
      if (!bottoken) return fieldMissing(ui.bottoken, 'Enter the bot token.');
      typed = { kind: 'bot', botname, bottoken };
    } else {
      const username = ui.username.value;
      if (!username.trim()) return fieldMissing(ui.username, 'Enter a username.');
      const n = length(username);
      if (maxNameLength !== null && n > maxNameLength) {
        return fieldMissing(ui.username, 'That username is too long: it has ' + n +
          ' characters, and this server allows ' + maxNameLength + '. Shorten it.');
      }
      if (openRoom) {
        typed = { kind: 'user', username, token: null };
      } else {
        const token = ui.token.value.trim();
        if (!token) return fieldMissing(ui.token, 'Enter the access token.');
        typed = { kind: 'user', username, token };
      }
    }
    creds = typed;
    loginFrom = 'form';
    freshPageAfter = null;
    connect();
  }

  function fieldMissing(field, text) {
    showError(ui.loginError, text);
    field.focus();
  }

  ui.username.addEventListener('input', updateNameHint);

  ui.tokenForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (state !== 'tokenauth' || tokenSent) return;
    const temp = ui.tempToken.value.replace(/\s+/g, '');
    if (!temp) {
      showError(ui.tokenError, 'Paste the token from the token page first.');
      ui.tempToken.focus();
      return;
    }
    clearError(ui.tokenError);
    if (sendFrame(['tokenauth', temp])) {
      tokenSent = true;
      ui.tempToken.value = '';
      setBusy(ui.tokenSubmit, true, 'Checking…');
    }
  });

  ui.tokenCancel.addEventListener('click', () => {
    freshPageAfter = null;
    closeSocket();
    if (loginFrom === 'chat') {
      toDisconnected('You cancelled the login.', null, 'Reconnecting cancelled.');
    } else {
      toLogin();
    }
  });

  ui.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (state !== 'chat' || myId === null) return;
    const text = ui.message.value;
    if (!text.trim()) return; // The server disconnects on empty messages: never send one.
    const n = length(text);
    if (limitKnown() && n > limit) {
      showError(ui.composerNote, 'Too long to send: ' + n + ' characters, and the limit is ' +
        limit + '. Shorten it by ' + (n - limit) + ' to send it.');
      ui.message.focus();
      return;
    }
    if (!sendFrame(['msg', { id: myId, msg: text }])) return;
    const li = addMessage(myName, text, true);
    li.dataset.length = String(n);
    ui.message.value = '';
    updateCount();
  });

  ui.message.addEventListener('input', updateCount);

  // Enter sends; Shift+Enter is a new line (and so is Enter while an input method composes).
  ui.message.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) {
      return;
    }
    event.preventDefault();
    ui.sendForm.requestSubmit();
  });

  ui.reconnect.addEventListener('click', () => {
    if (state !== 'disconnected' || !sessionCreds) return;
    creds = sessionCreds;
    loginFrom = 'chat';
    freshPageAfter = null;
    serverInfo = loadServerInfo();
    connect();
  });

  ui.switchLogin.addEventListener('click', () => {
    if (state !== 'disconnected') return;
    serverInfo = loadServerInfo();
    toLogin();
  });

  ui.loginBack.addEventListener('click', () => {
    if (state !== 'login' || !sessionCreds) return;
    // The room as it was left, with its banner and its Reconnect.
    state = 'disconnected';
    show('chat');
    ui.whoami.hidden = false;
    ui.reconnect.disabled = false;
    ui.reconnect.focus();
  });

  ui.leave.addEventListener('click', () => {
    if (state === 'reconnecting') {
      // No session to close yet: stop trying (the server lets it go when its window passes).
      stopReconnecting();
      resumeToken = null;
      closeSocket();
      toLeft();
      return;
    }
    if (state !== 'chat') return;
    // A close frame (1000): the server ends the session rather than holding it for a resume.
    resumeToken = null;
    leaving = true;
    closeSocket();
    connectionEnded({ code: 1000, reason: '' });
  });

  ui.notify.addEventListener('click', toggleNotifications);

  ui.membersToggle.addEventListener('click', () => {
    setMembersOpen(!ui.members.classList.contains('open'));
  });
  updateNotifyButton();

  updateCount();
  updateTitle();
  ui.username.focus();
})();
