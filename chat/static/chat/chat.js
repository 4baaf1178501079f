// The chat page. It talks to the REST API and the conversation socket exactly as an app would:
// history over REST, live events over the socket, re-sync with ?after=<last id> on reconnect.
// Times are shown in the conversation's time zone (the server stores UTC).
"use strict";

(function () {
  const root = document.getElementById("chat-app");
  const username = root.dataset.username;
  const messagesList = document.getElementById("messages");
  const typingIndicator = document.getElementById("typing-indicator");
  const errorBox = document.getElementById("error");
  const composer = document.getElementById("composer");
  const input = document.getElementById("message-input");
  const sendButton = document.getElementById("send");
  const connectionBox = document.getElementById("connection");
  const title = document.getElementById("conversation-title");
  const companionsNav = document.getElementById("companions");

  const state = {
    conversation: null,
    socket: null,
    lastId: 0,
    companionReadUpTo: 0,
    personReadUpTo: 0,
    timeFormat: null,
    reconnectDelay: 500,
    typingSentAt: 0,
    typingStopTimer: null,
  };

  function cookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function api(path, options = {}) {
    const response = await fetch(path, {
      method: options.method || "GET",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": cookie("csrftoken") },
      body: options.body ? JSON.stringify(options.body) : undefined,
    });
    const body = response.status === 204 ? null : await response.json();
    if (!response.ok) {
      const detail = body && (body.detail || JSON.stringify(body));
      throw new Error(detail || response.statusText);
    }
    return body;
  }

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function setConnection(stateName) {
    connectionBox.dataset.state = stateName;
    connectionBox.textContent = stateName;
    // Sending works without the socket too (REST fallback), so only a missing conversation disables it.
    input.disabled = !state.conversation;
    sendButton.disabled = input.disabled;
  }

  function renderReceipt(item) {
    const id = Number(item.dataset.id);
    const read = item.dataset.role === "person" && id <= state.companionReadUpTo;
    let receipt = item.querySelector(".read-receipt");
    if (read && !receipt) {
      receipt = document.createElement("span");
      receipt.className = "read-receipt";
      receipt.textContent = "Read";
      item.appendChild(receipt);
    }
  }

  function addMessage(message) {
    if (messagesList.querySelector('.message[data-id="' + message.id + '"]')) return;
    const item = document.createElement("li");
    item.className = "message";
    item.dataset.id = String(message.id);
    item.dataset.role = message.role;
    item.dataset.clientId = message.client_id;
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = message.text;
    const time = document.createElement("time");
    const at = new Date(message.created_at);
    time.dateTime = message.created_at;
    time.title = at.toISOString();
    time.textContent = state.timeFormat.format(at);
    item.append(text, time);
    // Keep id order even when a replayed message arrives after a newer push.
    const later = Array.from(messagesList.children).find((node) => Number(node.dataset.id) > message.id);
    messagesList.insertBefore(item, later || null);
    renderReceipt(item);
    state.lastId = Math.max(state.lastId, message.id);
    messagesList.scrollTop = messagesList.scrollHeight;
  }

  function markRead() {
    // The person has seen everything on screen; tell the server (it ignores marks that move back).
    const companionMessages = messagesList.querySelectorAll('.message[data-role="companion"]');
    if (!companionMessages.length || document.visibilityState !== "visible") return;
    const upTo = Number(companionMessages[companionMessages.length - 1].dataset.id);
    if (upTo <= state.personReadUpTo) return;
    state.personReadUpTo = upTo;
    sendEvent({ type: "read", up_to: upTo });
  }

  function sendEvent(event) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify(event));
      return true;
    }
    return false;
  }

  function onEvent(event) {
    if (event.type === "message.created") {
      addMessage(event.message);
      if (event.message.role === "companion") {
        typingIndicator.hidden = true;
        markRead();
      }
    } else if (event.type === "typing") {
      if (event.role === "companion") typingIndicator.hidden = !event.is_typing;
    } else if (event.type === "read") {
      if (event.role === "companion") {
        state.companionReadUpTo = Math.max(state.companionReadUpTo, event.up_to);
        messagesList.querySelectorAll('.message[data-role="person"]').forEach(renderReceipt);
      } else {
        state.personReadUpTo = Math.max(state.personReadUpTo, event.up_to);
      }
    } else if (event.type === "error") {
      showError(event.detail);
    }
  }

  function connect() {
    const conversation = state.conversation;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = scheme + "//" + location.host + "/ws/conversations/" + conversation.id + "/?after=" + state.lastId;
    const socket = new WebSocket(url);
    state.socket = socket;
    socket.onopen = () => {
      state.reconnectDelay = 500;
      setConnection("online");
    };
    socket.onmessage = (frame) => onEvent(JSON.parse(frame.data));
    socket.onclose = (close) => {
      if (state.socket !== socket || state.conversation !== conversation) return;
      state.socket = null;
      if (close.code === 4401) {
        location.href = "/accounts/login/?next=/";
        return;
      }
      if (close.code === 4404) {
        setConnection("offline");
        showError("This conversation is not available.");
        return;
      }
      setConnection("reconnecting");
      setTimeout(connect, state.reconnectDelay);
      state.reconnectDelay = Math.min(state.reconnectDelay * 2, 15000);
    };
  }

  async function openConversation(slug) {
    showError("");
    const conversation = await api("/api/v1/conversations/", { method: "POST", body: { companion: slug } });
    if (state.socket) {
      const old = state.socket;
      state.socket = null;
      old.close();
    }
    state.conversation = conversation;
    state.lastId = 0;
    state.companionReadUpTo = conversation.companion_read_up_to || 0;
    state.personReadUpTo = conversation.person_read_up_to || 0;
    state.timeFormat = new Intl.DateTimeFormat(undefined, {
      timeZone: conversation.time_zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    });
    title.textContent = conversation.companion.name + " · " + conversation.time_zone;
    typingIndicator.querySelector(".typing-name").textContent = conversation.companion.name;
    typingIndicator.hidden = true;
    companionsNav.querySelectorAll("button").forEach((button) => {
      button.classList.toggle("active", button.dataset.slug === slug);
    });
    messagesList.replaceChildren();
    const page = await api("/api/v1/conversations/" + conversation.id + "/messages/?limit=100");
    page.results.slice().reverse().forEach(addMessage);
    setConnection("connecting");
    connect();
    markRead();
    input.focus();
  }

  async function send(text) {
    const clientId = newClientId();
    if (sendEvent({ type: "message.send", text: text, client_id: clientId })) return;
    // No socket right now: the same send over REST (the socket's replay will not duplicate it).
    const message = await api("/api/v1/conversations/" + state.conversation.id + "/messages/", {
      method: "POST", body: { text: text, client_id: clientId },
    });
    addMessage(message);
  }

  function announceTyping(isTyping) {
    const now = Date.now();
    if (isTyping && now - state.typingSentAt < 2500) return;
    state.typingSentAt = isTyping ? now : 0;
    sendEvent({ type: "typing", is_typing: isTyping });
  }

  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim() || !state.conversation) return;
    showError("");
    try {
      await send(text);
      input.value = "";
      clearTimeout(state.typingStopTimer);
      announceTyping(false);
    } catch (error) {
      showError(error.message);
    }
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  input.addEventListener("input", () => {
    announceTyping(true);
    clearTimeout(state.typingStopTimer);
    state.typingStopTimer = setTimeout(() => announceTyping(false), 4000);
  });

  document.addEventListener("visibilitychange", markRead);

  async function start() {
    try {
      const [companions, conversations] = await Promise.all([
        api("/api/v1/companions/"),
        api("/api/v1/conversations/"),
      ]);
      companions.forEach((companion) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "companion";
        button.dataset.slug = companion.slug;
        button.textContent = companion.name;
        button.addEventListener("click", () => openConversation(companion.slug).catch((e) => showError(e.message)));
        companionsNav.appendChild(button);
      });
      // Staff see everyone's conversations in the API; the page is the person's own messenger.
      const own = conversations.filter((conversation) => conversation.person === username);
      if (own.length) await openConversation(own[0].companion.slug);
      else if (companions.length === 1) await openConversation(companions[0].slug);
    } catch (error) {
      showError(error.message);
    }
  }

  start();
})();
