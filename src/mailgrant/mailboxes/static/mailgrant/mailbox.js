// The mailbox form: show only the fields that apply to the chosen direction, protocol and auth
// method (each field says which in its data-applies attribute, set by the form); the server
// checks the same rules whatever is shown.
"use strict";
(function () {
  function value(name) {
    const select = document.getElementById("id_" + name);
    return select ? select.value : "";
  }
  function chosen() {
    const protocol = value("protocol");
    // An empty direction is the protocol's: SMTP sends, IMAP and POP3 fetch.
    const direction = value("direction") || (protocol === "smtp" ? "outgoing" : "incoming");
    return { direction: direction, protocol: protocol, auth_method: value("auth_method") };
  }
  function applies(rule, now) {
    return rule.split(" ").every(function (term) {
      const [name, values] = term.split("=");
      return values.split("|").indexOf(now[name]) !== -1;
    });
  }
  function toggle() {
    const now = chosen();
    document.querySelectorAll("[data-applies]").forEach(function (input) {
      const row = input.closest(".form-row");
      if (row) row.hidden = !applies(input.dataset.applies, now);
    });
    document.querySelectorAll("fieldset.mailgrant-incoming").forEach(function (fieldset) {
      fieldset.hidden = now.direction !== "incoming";
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    ["id_direction", "id_protocol", "id_auth_method"].forEach(function (id) {
      const select = document.getElementById(id);
      if (select) select.addEventListener("change", toggle);
    });
    toggle();
  });
})();
