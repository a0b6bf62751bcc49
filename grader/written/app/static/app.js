// The marking app's keys: j/k next/previous answer, n next unmarked, 1-9 toggle a rubric item, s save,
// c comment; in a comment Ctrl+Enter saves and Escape leaves it. Served as a file: the CSP allows 'self' only.
(function () {
  const answers = Array.from(document.querySelectorAll('article.answer-block'));
  let at = Math.max(0, answers.findIndex(a => a.id === location.hash.slice(1)));
  function focus(i) {
    if (!answers.length) return;
    at = Math.min(Math.max(i, 0), answers.length - 1);
    answers.forEach(a => a.classList.remove('focused'));
    answers[at].classList.add('focused');
    answers[at].scrollIntoView({block: 'center'});
  }
  focus(at);
  document.addEventListener('keydown', function (e) {
    if (e.target.tagName === 'TEXTAREA' || e.target.tagName === 'INPUT' && e.target.type === 'text') {
      // typing a comment: Ctrl+Enter saves, Escape goes back to the keys
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); e.target.form.submit(); }
      else if (e.key === 'Escape') e.target.blur();
      return;
    }
    if (e.key === 'j') focus(at + 1);
    else if (e.key === 'k') focus(at - 1);
    else if (e.key === 'n') {
      const next = answers.findIndex((a, i) => i > at && a.dataset.marked === 'no');
      const first = answers.findIndex(a => a.dataset.marked === 'no');
      focus(next >= 0 ? next : first >= 0 ? first : at);
    } else if (/^[1-9]$/.test(e.key) && answers.length) {
      const box = answers[at].querySelector('input[name=item][value="' + e.key + '"]');
      if (box) box.checked = !box.checked;
    } else if (e.key === 'c' && answers.length) {
      answers[at].querySelector('textarea').focus();
    } else if (e.key === 's' && answers.length) {
      answers[at].querySelector('form.mark').submit();
    } else return;
    e.preventDefault();
  });
})();
