/* proact widget: one tag on the shop's pages,
 *   <script src="https://proact.example/widget.js" data-site="shop-a" data-endpoint="https://proact.example" defer></script>
 * sends page views and heartbeats (only while the tab is visible), asks the decision call whether to
 * offer help, shows an accessible pop-up (a dialog: labelled, keyboard-operable, Escape closes it,
 * fixed over the page so nothing moves), reports what the visitor did, and posts the callback request
 * with the visitor's explicit consent. Attributes: data-site (the shop's site key), data-endpoint (default: the script's origin),
 * data-page-type (else read from <meta name="proact:page-type">), data-heartbeat (seconds, default 15).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var endpoint = (script && script.getAttribute("data-endpoint")) || (script ? new URL(script.src).origin : "");
  var heartbeat = Number((script && script.getAttribute("data-heartbeat")) || 15) * 1000;
  var site = (script && script.getAttribute("data-site")) || "";
  var meta = document.querySelector('meta[name="proact:page-type"]');
  var pageType = (script && script.getAttribute("data-page-type")) || (meta && meta.content) || "other";

  function id(prefix) {
    return prefix + "-" + Math.random().toString(16).slice(2, 12) + Date.now().toString(16);
  }
  function stored(store, key, prefix) {
    var value = store.getItem(key);
    if (!value) { value = id(prefix); store.setItem(key, value); }
    return value;
  }
  var visitor = stored(localStorage, "proact.visitor", "v");
  var fresh = !sessionStorage.getItem("proact.session");
  var session = stored(sessionStorage, "proact.session", "s");
  var base = { visitor_id: visitor, session_id: session };
  var enteredAt = Date.now();
  var offered = sessionStorage.getItem("proact.offered") === "1";

  function post(path, body) {
    return fetch(endpoint + path, {
      method: "POST", headers: { "Content-Type": "application/json", "X-Proact-Site": site },
      body: JSON.stringify(body), keepalive: true,
    }).then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); });
  }
  function send(events) { return post("/v1/events", { events: events }).catch(function () {}); }

  var first = [];
  if (fresh) first.push({ type: "session.started", data: Object.assign({ landing_url: location.pathname }, base) });
  var previous = Number(sessionStorage.getItem("proact.page_seconds") || 0);
  first.push({ type: "page.viewed", data: Object.assign({ url: location.pathname + location.search,
    page_type: pageType, duration_s: previous || null }, base) });
  if (pageType === "checkout") {
    first.push({ type: "checkout.started", data: Object.assign({ cart_value: { amount: "0.00", currency: "EUR" } }, base) });
  }
  send(first).then(decide);
  addEventListener("pagehide", function () {
    sessionStorage.setItem("proact.page_seconds", String(Math.round((Date.now() - enteredAt) / 1000)));
  });
  setInterval(function () {
    if (document.visibilityState !== "visible") return;  // a hidden tab is not a visitor lingering
    send([{ type: "session.heartbeat", data: base }]).then(decide);
  }, heartbeat);

  function decide() {
    if (offered) return;
    post("/v1/decide", Object.assign({ locale: navigator.language, url: location.pathname }, base))
      .then(function (answer) { if (answer.show && !offered) show(answer); })
      .catch(function () {});
  }

  function outcome(type, answer) {
    post("/v1/outcomes", Object.assign({ type: type, decision_id: answer.decision_id, rule_id: answer.rule_id }, base))
      .catch(function () {});
  }

  function element(tag, attrs, text) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text) el.textContent = text;  // text, never HTML: content cannot inject markup
    return el;
  }

  function show(answer) {
    offered = true;
    sessionStorage.setItem("proact.offered", "1");
    var p = answer.popup;
    var opener = document.activeElement;
    var box = element("div", { role: "dialog", "aria-modal": "true", "aria-labelledby": "proact-title",
      "aria-describedby": "proact-body", id: "proact-popup", lang: p.locale,
      style: "position:fixed;right:1rem;bottom:1rem;max-width:22rem;z-index:2147483647;background:#fff;" +
             "color:#111;border:1px solid #555;border-radius:.5rem;padding:1rem;font:16px/1.4 sans-serif;" +
             "box-shadow:0 .5rem 1.5rem rgba(0,0,0,.3)" });
    box.appendChild(element("h2", { id: "proact-title", style: "margin:0 0 .5rem;font-size:1.15rem" }, p.title));
    box.appendChild(element("p", { id: "proact-body", style: "margin:0 0 .75rem" }, p.body));
    var form = element("form", { novalidate: "" });
    var phoneLabel = element("label", { for: "proact-phone" }, p.field);
    var contact = element("input", { id: "proact-phone", name: "contact", type: "text", autocomplete: "tel",
      required: "", style: "display:block;box-sizing:border-box;width:100%;margin:.25rem 0 .5rem;padding:.4rem" });
    var consent = element("input", { id: "proact-consent", name: "consent", type: "checkbox", required: "" });
    var consentLabel = element("label", { for: "proact-consent" }, " " + p.consent);
    var error = element("p", { id: "proact-error", role: "alert", style: "color:#a00;margin:.5rem 0 0" });
    var submit = element("button", { type: "submit", id: "proact-accept", style: "margin:.75rem .5rem 0 0" }, p.cta);
    var dismiss = element("button", { type: "button", id: "proact-dismiss" }, p.dismiss);
    [phoneLabel, contact, consent, consentLabel, error, submit, dismiss].forEach(function (el) { form.appendChild(el); });
    box.appendChild(form);
    document.body.appendChild(box);
    outcome("popup.shown", answer);
    contact.focus();

    function close() {
      box.remove();
      document.removeEventListener("keydown", onKey);
      if (opener && opener.focus) opener.focus();
    }
    function onKey(e) {
      if (e.key === "Escape") { outcome("popup.dismissed", answer); close(); }
      if (e.key === "Tab") {  // keep the focus inside the dialog while it is open
        var items = box.querySelectorAll("input,button");
        var firstItem = items[0], lastItem = items[items.length - 1];
        if (e.shiftKey && document.activeElement === firstItem) { e.preventDefault(); lastItem.focus(); }
        else if (!e.shiftKey && document.activeElement === lastItem) { e.preventDefault(); firstItem.focus(); }
      }
    }
    document.addEventListener("keydown", onKey);
    dismiss.addEventListener("click", function () { outcome("popup.dismissed", answer); close(); });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!consent.checked) { error.textContent = "Please tick the box to agree to be contacted."; consent.focus(); return; }
      var value = contact.value.trim();
      var body = Object.assign({ consent: true, decision_id: answer.decision_id }, base);
      body.locale = document.documentElement.lang || navigator.language || undefined;
      try { body.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (err) { /* no Intl: UTC */ }
      if (value.indexOf("@") > 0) body.email = value; else body.phone = value;
      post("/v1/callbacks", body).then(function (ok) {
        outcome("popup.accepted", answer);
        form.replaceWith(element("p", { id: "proact-thanks", role: "status" }, ok.message));
        setTimeout(close, 4000);
      }).catch(function () { error.textContent = "That does not look right; please check and try again."; contact.focus(); });
    });
  }
})();
