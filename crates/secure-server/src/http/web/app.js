// CLIChat browser client (v2): logs in to a Secure Server over SAUTH2 (or as a bot) and chats.
// In an open room (the server's "SAUTH2": false, announced at /app/server.json) a person logs
// in with a name alone.
//
// Served by the server itself from /app/app.js under a Content-Security-Policy that allows no
// inline script. Every name and message goes into the page as text (textContent), never as HTML.
// Tokens live only in memory and in the form fields: never in the URL, never in storage.
'use strict';

(function () {
  /** The server's message limit until it tells us otherwise (its default). */
  const DEFAULT_LIMIT = 200;
  /** What the server says of itself before anyone logs in. */
  const SERVER_INFO_URL = '/app/server.json';
  /** How long to wait for it before logging in as today (SAUTH2). */
  const SERVER_INFO_TIMEOUT_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    whoami: $('whoami'),
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
    tokenView: $('token-view'),
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
    switchLogin: $('switch-login'),
    sendForm: $('send-form'),
    message: $('message'),
    send: $('send'),
    count: $('count'),
    countValue: $('count-value'),
    countLimit: $('count-limit'),
  };

  // What the person typed to log in, kept in memory for "Reconnect".
  let creds = null;
  // The live socket; handlers of an older socket check this and do nothing.
  let ws = null;
  // 'login' | 'waiting' (for /app/server.json, to log in) | 'connecting' | 'tokenauth' | 'chat' |
  // 'disconnected'
  let state = 'login';
  let myId = null;
  let myName = '';
  let lastRefusal = null;
  let leaving = false;
  let limit = DEFAULT_LIMIT;
  // Where `limit` comes from: 'default', 'announced' (by /app/server.json) or 'learned' (from a
  // refusal). Only a learned limit stops a message here: the server may have been reconfigured
  // since it announced one, so until it refuses, it decides.
  let limitSource = 'default';
  let joinedBefore = false;
  // An open room: people log in with a name alone. False until the server says so.
  let openRoom = false;
  // The longest name the server announced, or null.
  let maxNameLength = null;
  // Whether /app/server.json has answered (or failed); a login waits for it.
  let infoSettled = false;

  // ---- Refusals, in plain words (the server's exact text is always shown too) ----

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
      case 'Too many login attempts; try again later.':
        return 'Too many login attempts from your address. Wait a minute and try again.';
      case 'You are sending messages too fast; slow down.':
        return 'You are sending messages too fast; that one was not delivered.';
      case 'Flooding; disconnected.':
        return 'You sent too many messages too fast, so the server disconnected you.';
      default:
        return 'The server refused.';
    }
  }

  /** Fills `box` with a refusal: the plain words, then the server's exact text. */
  function showRefusal(box, text) {
    box.replaceChildren(
      el('span', 'plain', explain(text)),
      document.createTextNode(' '),
      serverSaid(text));
    box.hidden = false;
  }

  function serverSaid(text) {
    const said = el('span', 'server-said', 'Server said: “');
    said.append(el('span', 'server-text', text), '”');
    return said;
  }

  function showError(box, text) {
    box.replaceChildren(el('span', 'plain', text));
    box.hidden = false;
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

  function timeNode() {
    const now = new Date();
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

  function addMessage(name, text, own) {
    const li = el('li', own ? 'msg own' : 'msg');
    const who = el('span', 'name', name);
    if (own) who.append(el('span', 'you', ' (you)'));
    li.append(timeNode(), who, el('span', 'text', text));
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
      serverSaid(text));
    return append(li);
  }

  // ---- Views ----

  function show(view) {
    ui.loginView.hidden = view !== 'login';
    ui.tokenView.hidden = view !== 'token';
    ui.chatView.hidden = view !== 'chat';
  }

  function setBusy(button, busy, label) {
    button.disabled = busy;
    button.textContent = label;
  }

  function toLogin(errorText, refusal) {
    state = 'login';
    ws = null;
    show('login');
    ui.whoami.hidden = true;
    ui.leave.hidden = true;
    setBusy(ui.connect, false, 'Connect');
    if (refusal) showRefusal(ui.loginError, refusal);
    else if (errorText) showError(ui.loginError, errorText);
    else clearError(ui.loginError);
    if (creds && creds.kind === 'bot') ui.botname.focus();
    else if (!openRoom && ui.username.value && !ui.token.value) ui.token.focus();
    else ui.username.focus();
  }

  function toTokenView(link) {
    state = 'tokenauth';
    ui.tokenLink.href = link;
    ui.tempToken.value = '';
    clearError(ui.tokenError);
    setBusy(ui.tokenSubmit, false, 'Log in');
    show('token');
    ui.tokenLink.focus();
  }

  function toChat() {
    state = 'chat';
    show('chat');
    ui.disconnected.hidden = true;
    ui.message.disabled = false;
    ui.send.disabled = false;
    ui.whoami.textContent = 'Signed in as ' + myName;
    ui.whoami.hidden = false;
    ui.leave.hidden = false;
    addEvent('self', (joinedBefore ? 'Reconnected as ' : 'You joined as ') + myName + '.');
    joinedBefore = true;
    updateCount();
    ui.message.focus();
  }

  /** The chat view without a connection: what happened, and a way back in. */
  function toDisconnected(reasonText, refusal, eventText) {
    state = 'disconnected';
    ws = null;
    show('chat');
    ui.message.disabled = true;
    ui.send.disabled = true;
    ui.leave.hidden = true;
    ui.whoami.textContent = 'Disconnected (was ' + myName + ')';
    ui.disconnectedText.replaceChildren(el('span', 'plain', reasonText));
    if (refusal) {
      ui.disconnectedText.append(document.createTextNode(' '), serverSaid(refusal));
    }
    ui.disconnected.hidden = false;
    ui.reconnect.disabled = false;
    addEvent('self', eventText);
    ui.reconnect.focus();
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
    lastRefusal = null;
    leaving = false;
    myId = null;
    myName = creds.kind === 'bot' ? '[BOT] ' + creds.botname : creds.username;
    state = 'connecting';
    setBusy(ui.connect, true, 'Connecting…');
    ui.reconnect.disabled = true;
    ui.disconnectedText.replaceChildren(el('span', 'plain', 'Connecting…'));

    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch (e) {
      connectionEnded(1006);
      return;
    }
    ws = socket;
    socket.onopen = () => {
      if (ws !== socket) return;
      if (creds.kind === 'bot') {
        sendFrame(['botauth', { botusername: creds.botname, bottoken: creds.bottoken }]);
      } else if (creds.token) {
        sendFrame(['auth', { username: creds.username, token: creds.token }]);
      } else {
        // An open room: the name alone.
        sendFrame(['auth', { username: creds.username }]);
      }
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
      connectionEnded(event.code);
    };
  }

  function handle(frame) {
    const [kind, a, b] = frame;
    switch (kind) {
      case 'authmsg':
        if (state !== 'connecting' || typeof a !== 'string') return;
        {
          let url = null;
          try {
            url = new URL(a);
          } catch (e) {
            url = null;
          }
          if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
            closeSocket();
            toLogin('The server sent a link this page cannot open: ' + a);
            return;
          }
          toTokenView(url.href);
        }
        break;
      case 'id':
        if ((state !== 'connecting' && state !== 'tokenauth') || typeof a !== 'number') return;
        myId = a;
        toChat();
        break;
      case 'join':
        if (state === 'chat' && typeof a === 'string') addEvent('join', a + ' joined.');
        break;
      case 'disconnect':
        if (state === 'chat' && typeof a === 'string') addEvent('leave', a + ' left.');
        break;
      case 'message':
        if (state === 'chat' && typeof a === 'string' && typeof b === 'string') {
          addMessage(a, b, false);
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
    if (state !== 'chat') return; // The close that follows shows it on the login view.
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

  function closeReason(code) {
    if (leaving) return 'You left the room.';
    if (lastRefusal) return explain(lastRefusal);
    switch (code) {
      case 1000:
        return 'The server closed the connection.';
      case 1001:
        return 'The server closed the connection: it is shutting down or restarting, ' +
          'or this connection stopped answering.';
      case 1008:
        return 'The server dropped this connection: messages could not reach it fast enough.';
      case 1009:
        return 'The server closed the connection: a message was too big.';
      default:
        return 'The connection to the server was lost.';
    }
  }

  function connectionEnded(code) {
    const was = state;
    if (was === 'chat') {
      toDisconnected(closeReason(code), lastRefusal, leaving ? 'You left.' : 'Disconnected.');
    } else if (was === 'connecting' || was === 'tokenauth') {
      let reason;
      if (lastRefusal) reason = explain(lastRefusal);
      else if (was === 'connecting' && code === 1006) {
        reason = 'Could not connect to the server, or it is too busy. Try again in a moment.';
      } else reason = 'The connection closed before the login finished (code ' + code + ').';
      if (joinedBefore) toDisconnected(reason, lastRefusal, 'Reconnecting failed.');
      else if (lastRefusal) toLogin(null, lastRefusal);
      else toLogin(reason);
    }
  }

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

  function updateCount() {
    const n = length(ui.message.value);
    ui.countValue.textContent = String(n);
    ui.countLimit.textContent = String(limit);
    ui.count.classList.toggle('over', n > limit);
    ui.count.title = limitSource === 'default' ? 'Most servers allow ' + limit + ' characters.'
      : 'The server allows ' + limit + ' characters.';
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

  /** Reads /app/server.json; on any failure the page stays as it is (SAUTH2, default limits). */
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
        ui.usernameHint.textContent = '(up to ' + maxNameLength + ' characters)';
        ui.usernameHint.hidden = false;
      }
      if (positiveInteger(info.max_message_length) && limitSource !== 'learned') {
        limit = info.max_message_length;
        limitSource = 'announced';
        updateCount();
      }
      if (info.sauth2 === false) setOpenRoom(true);
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

  const serverInfo = loadServerInfo();

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
    if (ui.kindBot.checked) {
      const botname = ui.botname.value;
      const bottoken = ui.bottoken.value;
      if (!botname) return fieldMissing(ui.botname, 'Enter the bot name.');
      if (!bottoken) return fieldMissing(ui.bottoken, 'Enter the bot token.');
      creds = { kind: 'bot', botname, bottoken };
    } else {
      const username = ui.username.value;
      if (!username.trim()) return fieldMissing(ui.username, 'Enter a username.');
      if (openRoom) {
        creds = { kind: 'user', username, token: null };
      } else {
        const token = ui.token.value.trim();
        if (!token) return fieldMissing(ui.token, 'Enter the access token.');
        creds = { kind: 'user', username, token };
      }
    }
    connect();
  }

  function fieldMissing(field, text) {
    showError(ui.loginError, text);
    field.focus();
  }

  ui.tokenForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (state !== 'tokenauth') return;
    const temp = ui.tempToken.value.replace(/\s+/g, '');
    if (!temp) {
      showError(ui.tokenError, 'Paste the token from the token page first.');
      ui.tempToken.focus();
      return;
    }
    clearError(ui.tokenError);
    if (sendFrame(['tokenauth', temp])) {
      ui.tempToken.value = '';
      setBusy(ui.tokenSubmit, true, 'Checking…');
    }
  });

  ui.tokenCancel.addEventListener('click', () => {
    closeSocket();
    if (joinedBefore) toDisconnected('You cancelled the login.', null, 'Reconnecting cancelled.');
    else toLogin();
  });

  ui.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (state !== 'chat' || myId === null) return;
    const text = ui.message.value;
    if (!text.trim()) return; // The server disconnects on empty messages: never send one.
    const n = length(text);
    if (limitSource === 'learned' && n > limit) {
      addEvent('local', 'Too long to send: ' + n + ' characters, and the limit is ' + limit + '.');
      return;
    }
    if (!sendFrame(['msg', { id: myId, msg: text }])) return;
    const li = addMessage(myName, text, true);
    li.dataset.length = String(n);
    ui.message.value = '';
    updateCount();
  });

  ui.message.addEventListener('input', updateCount);

  ui.reconnect.addEventListener('click', () => {
    if (state === 'disconnected' && creds) connect();
  });

  ui.switchLogin.addEventListener('click', () => {
    if (state === 'disconnected') toLogin();
  });

  ui.leave.addEventListener('click', () => {
    if (state !== 'chat') return;
    leaving = true;
    closeSocket();
    connectionEnded(1000);
  });

  updateCount();
  ui.username.focus();
})();
