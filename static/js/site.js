// Progressive enhancements only: every page works without this file.
(function () {
  "use strict";

  // On the post form, hide what applies to offers only while "Need" is chosen (the server refuses it anyway),
  // and disable its controls so that what was picked for an offer is not sent with the need: hidden, the
  // poster could neither see nor undo it. Back to "Offer", the picks are there again.
  function syncOfferOnly(form) {
    var checked = form.querySelector('input[name="kind"]:checked');
    var isNeed = checked && checked.value === "need";
    form.querySelectorAll("[data-offer-only]").forEach(function (element) {
      // Never hide a field the server flagged: the poster must see what to fix.
      var hide = isNeed && !element.querySelector(".field-errors");
      element.hidden = hide;
      element.querySelectorAll("input, select, textarea").forEach(function (control) {
        control.disabled = hide;
      });
    });
  }

  // Under a list of Parties, what is chosen (PartyListWidget): the picks are scrolled out of sight, and a plain
  // click or an arrow key replaces them all; the line says so at once, and is read out when it changes.
  function showChosen(select) {
    var line = document.getElementById(select.id + "-chosen");
    if (!line) {
      line = document.createElement("p");
      line.id = select.id + "-chosen";
      line.className = "chosen";
      line.setAttribute("aria-live", "polite");
      select.insertAdjacentElement("afterend", line);
    }
    var names = Array.from(select.selectedOptions).map(function (option) {
      return option.dataset.name || option.textContent.trim();
    });
    line.textContent = names.length
      ? select.dataset.chosen.replace("%(names)s", names.join(", "))
      : select.dataset.noneChosen;
  }

  // Leave unused filters out of htmx GET requests, so the pushed URL is short and shareable (?q=flood).
  document.addEventListener("htmx:configRequest", function (event) {
    var formData = event.detail.formData;
    if (event.detail.verb !== "get" || !formData) {
      return;
    }
    var names = Array.from(new Set(Array.from(formData.keys())));
    names.forEach(function (name) {
      if (formData.getAll(name).every(function (value) { return value === ""; })) {
        formData.delete(name);
      }
    });
  });

  // After an answer to a match (htmx swaps its item), keep keyboard focus there rather than on the page
  // (the button pressed was replaced), and have screen readers read the item's outcome.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    var item = target && target.id && document.getElementById(target.id);
    if (!item || !item.classList.contains("match")) {
      return;
    }
    // The answer's out-of-band parts (the panel's counts) settle too, with the item as `target`: act once, for
    // the item itself.
    if (event.target !== item) {
      return;
    }
    item.focus();
    var outcome = item.querySelector(".message, .match-actions .status");
    // An error is a role="alert" of its own, which screen readers read as it appears: not twice.
    if (outcome && outcome.getAttribute("role") !== "alert") {
      announce(document.getElementById("match-announcer"), outcome.textContent.trim());
    }
  });

  // Say `text` through a live region, emptied first: the same words as last time ("Dismissed." on a second
  // match) would otherwise be no change, and not read again.
  function announce(region, text) {
    if (!region) {
      return;
    }
    region.textContent = "";
    window.setTimeout(function () {
      region.textContent = text;
    }, 100);
  }

  // After the list's results are replaced: screen readers hear the count only; after "Next" or "Previous"
  // (the link pressed is gone), the keyboard goes to the top of the new page of results.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "results") {
      return;
    }
    var count = target.querySelector(".results-count");
    var announcer = document.getElementById("results-announcer");
    if (count) {
      announce(announcer, count.textContent.trim());
    }
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (count && source && source.closest && source.closest(".pagination")) {
      count.focus();
      count.scrollIntoView({ block: "start" });
    }
  });

  // A request that failed (a server error, an expired session, the network) says so where it was made, rather
  // than leaving the page as it was without a word.
  document.addEventListener("htmx:responseError", function (event) {
    announceFailure(event);
  });
  document.addEventListener("htmx:sendError", function (event) {
    announceFailure(event);
  });

  function announceFailure(event) {
    var source = event.detail.elt;
    var item = source && source.closest && source.closest(".match");
    var announcer = document.getElementById(item ? "match-announcer" : "results-announcer");
    // Refused for its pace (the user's budget of changes): said so, not as a failure to retry at once.
    var paced = event.detail.xhr && event.detail.xhr.status === 429;
    var message =
      document.documentElement.getAttribute(paced ? "data-too-many-requests" : "data-request-failed") ||
      "The request failed.";
    announce(announcer, message);
    // Shown too: on the match it concerns, or above the list's results (which are those of the last search
    // that worked, not of the filters now chosen).
    var place = item || document.getElementById("results");
    if (place) {
      var note = place.querySelector(".request-failed");
      if (!note) {
        note = document.createElement("p");
        note.className = "message message-error request-failed";
        if (item) {
          item.appendChild(note);
        } else {
          place.insertBefore(note, place.firstChild);
        }
      }
      note.textContent = message;
    }
  }

  // A link to log in returns to this page after it (`next`), and to the place on it: an email's link to one match
  // (#match-12) opened logged out took the user to the top of the page instead.
  function keepPlaceInNext() {
    if (!window.location.hash) {
      return;
    }
    document.querySelectorAll("a[href*='next=']").forEach(function (link) {
      var url = new URL(link.href, window.location.href);
      var next = url.searchParams.get("next");
      if (next && next.indexOf("#") === -1 && next.charAt(0) === "/") {
        url.searchParams.set("next", next + window.location.hash);
        link.href = url.pathname + url.search;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    keepPlaceInNext();
    // Take keyboard and screen-reader users straight to the list of problems after a refused submission.
    var summary = document.querySelector(".error-summary");
    var messages = document.querySelector("main .messages");
    if (summary) {
      summary.focus();
    } else if (messages) {
      // A confirmation present when the page loads is not announced by a live region: read it by focusing it.
      messages.focus();
    }
    // The list's filters search as they change; the search box does as it is typed (its own trigger). An
    // event of our own rather than an htmx trigger filter: those are evaluated code, which the site's
    // Content-Security-Policy forbids.
    document.querySelectorAll("form[data-live-filters]").forEach(function (form) {
      form.addEventListener("change", function (event) {
        if (event.target.name !== "q" && window.htmx) {
          window.htmx.trigger(form, "filters-changed");
        }
      });
      // The search box searches as it is typed, but not while an input method (pinyin, kana, a Korean or an
      // Arabic keyboard's composition) is still composing: it searched for "tai'yang" and announced no results
      // before the characters were chosen. The composition's end searches for what it gave.
      var query = form.querySelector("input[name=q]");
      if (query) {
        var typed = function (event) {
          if (!event.isComposing && window.htmx) {
            window.htmx.trigger(query, "query-typed");
          }
        };
        query.addEventListener("input", typed);
        query.addEventListener("compositionend", typed);
      }
    });
    document.querySelectorAll("form[data-post-form]").forEach(function (form) {
      syncOfferOnly(form);
      form.querySelectorAll("select[data-chosen]").forEach(showChosen);
      form.addEventListener("change", function (event) {
        if (event.target.name === "kind") {
          syncOfferOnly(form);
        } else if (event.target.matches("select[data-chosen]")) {
          showChosen(event.target);
        }
      });
    });
  });
})();
