/**
 * The UI's one script: a progress page (main[data-refresh-seconds]) reloads itself until
 * what it waits for is done. Without script the page's "Check again" link does the same.
 */
export const PROGRESS_SCRIPT = `(() => {
  const main = document.querySelector('main[data-refresh-seconds]');
  const seconds = Number(main && main.dataset.refreshSeconds);
  if (seconds > 0) setTimeout(() => location.reload(), seconds * 1000);
})();
`;
