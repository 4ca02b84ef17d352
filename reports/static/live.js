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
      document.body.replaceWith(document.adoptNode(doc.body));
      document.title = doc.title;
    } catch (e) {
      const note = document.getElementById("unreachable");
      if (note) note.hidden = false;
    } finally {
      clearTimeout(timer);
    }
    setTimeout(tick, every);
  }
  setTimeout(tick, every);
})(1000 * Number(document.currentScript.dataset.refresh || 2));
