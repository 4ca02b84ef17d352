// The live view's refresh: the page is fetched again every data-refresh seconds (the script tag's) and its body
// swapped in. A station that restarts, hangs or drops off the network leaves the page as it was, marked "not
// answering", and it comes back on its own; a meta refresh had the browser land on its own error page, which never
// reloads, so a screen at the line stayed dark.
((every) => {
  async function tick() {
    // a hung station is given up on; not by AbortSignal.timeout, which a line screen's browser from before 2022 (an
    // HMI panel's) lacks: there its TypeError marked a station that answered as "not answering", for good
    const gaveUp = new AbortController();
    const timer = setTimeout(() => gaveUp.abort(), Math.max(5000, 3 * every));
    try {
      const r = await fetch(location.href, { cache: "no-store", signal: gaveUp.signal });
      if (!r.ok) throw new Error(String(r.status));
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      // the body's content is swapped in around #announce, which stays: a live region replaced by a new one is not
      // announced, and one announced at every swap would read the whole page again every few seconds
      const say = document.getElementById("announce"), next = doc.getElementById("announce");
      // the keyboard's place and each wide table's sideways scroll outlive the swap: a table box in the tab order lost
      // its focus at every refresh, and a keyboard could not scroll it
      const focusable = () => [...document.querySelectorAll("a[href], [tabindex]")];
      const at = focusable().indexOf(document.activeElement);
      const scrolled = [...document.querySelectorAll(".wide")].map((box) => box.scrollLeft);
      if (say && next) {
        next.remove();
        for (const n of [...document.body.childNodes]) if (n !== say) n.remove();
        document.body.append(...document.adoptNode(doc.body).childNodes);
        if (next.dataset.part && next.dataset.part !== say.dataset.part) say.textContent = next.dataset.say;
        say.dataset.part = next.dataset.part;
      } else {
        document.body.replaceWith(document.adoptNode(doc.body));
      }
      const boxes = document.querySelectorAll(".wide");
      scrolled.forEach((x, i) => { if (boxes[i]) boxes[i].scrollLeft = x; });
      const back = at >= 0 ? focusable()[at] : null;
      if (back) back.focus({ preventScroll: true });
      document.title = doc.title;
    } catch (e) {
      const note = document.getElementById("unreachable"), say = document.getElementById("announce");
      if (note && note.hidden && say) say.textContent = note.textContent;  // said once, as it shows
      if (note) note.hidden = false;
    } finally {
      clearTimeout(timer);
    }
    setTimeout(tick, every);
  }
  setTimeout(tick, every);
})(1000 * Number(document.currentScript.dataset.refresh || 2));
