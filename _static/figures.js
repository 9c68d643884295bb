// A figure shown smaller than its natural size (the book column of a phone) opens full size on click.
document.addEventListener("DOMContentLoaded", () => {
  const wrap = img => {
    if (img.closest("a") || img.naturalWidth <= img.clientWidth + 1) return;
    const link = document.createElement("a");
    link.href = img.currentSrc || img.src;
    link.className = "figure-full-size";
    link.title = "open the figure at full size";
    link.target = "_blank";
    img.replaceWith(link);
    link.appendChild(img);
  };
  document.querySelectorAll("article.bd-article img").forEach(img => {
    if (img.complete) wrap(img); else img.addEventListener("load", () => wrap(img), {once: true});
  });
});
