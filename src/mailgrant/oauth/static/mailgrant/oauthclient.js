// The client form: show the fields that apply to the chosen provider and type; copy the redirect URI.
"use strict";
(function () {
  function rowOf(name) {
    const input = document.getElementById("id_" + name);
    return input ? input.closest(".form-row") : null;
  }
  function toggle() {
    const provider = document.getElementById("id_provider");
    const type = document.getElementById("id_type");
    if (provider) {
      const tenant = rowOf("tenant"), issuer = rowOf("issuer");
      if (tenant) tenant.hidden = provider.value !== "azure";
      if (issuer) issuer.hidden = provider.value !== "generic";
    }
    if (type) {
      document.querySelectorAll("fieldset.mailgrant-user-type").forEach(function (fs) {
        fs.hidden = type.value !== "user";
      });
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    ["id_provider", "id_type"].forEach(function (id) {
      const el = document.getElementById(id);
      if (el) el.addEventListener("change", toggle);
    });
    toggle();
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        const field = document.getElementById(button.dataset.copy);
        field.select();
        if (navigator.clipboard) navigator.clipboard.writeText(field.value);
        else document.execCommand("copy");
        button.textContent = "Copied";
      });
    });
  });
})();
