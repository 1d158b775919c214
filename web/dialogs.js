// Operator dialogs in the page (hp.dialog kinds: confirm, text, number, choice,
// multi, image). Each card is a form: Enter answers, Tab moves, the first control
// takes the focus. The station validates the answer again (400 shows here).
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
};

let uid = 0;

function yesNo(form, send) {
  const row = el('div', 'buttons');
  const yes = el('button', 'yes', 'Yes');
  yes.type = 'button';
  yes.dataset.autofocus = '';
  const no = el('button', 'no', 'No');
  no.type = 'button';
  yes.addEventListener('click', () => send(true));
  no.addEventListener('click', () => send(false));
  row.append(yes, no);
  form.append(row);
  // y / n keys answer too
  form.addEventListener('keydown', (e) => {
    if (e.key === 'y' || e.key === 'Y') { e.preventDefault(); send(true); }
    if (e.key === 'n' || e.key === 'N') { e.preventDefault(); send(false); }
  });
}

function submitRow(form) {
  const b = el('button', 'submit', 'Answer');
  b.type = 'submit';
  form.append(b);
}

export function renderDialog(d, slot, onAnswer) {
  const card = el('section', 'dialog');
  card.dataset.id = d.id;
  card.dataset.kind = d.kind ?? 'confirm';
  card.setAttribute('role', 'dialog');
  const titleId = `dlg-${++uid}`;
  card.setAttribute('aria-labelledby', titleId);
  card.append(el('h3', 'dialog-title', d.title ?? 'Operator question'));
  card.lastChild.id = titleId;
  if (d.text) card.append(el('p', 'dialog-text', d.text));
  const form = el('form', 'dialog-form');
  form.noValidate = true;
  const err = el('p', 'dialog-error');
  err.setAttribute('role', 'alert');
  const send = (v) => { err.textContent = ''; onAnswer(v, err); };
  const kind = d.kind ?? 'confirm';
  if (kind === 'image') {
    const img = el('img', 'dialog-image');
    img.alt = d.title ?? 'image for the question';
    img.src = `/api/dialogs/${encodeURIComponent(d.id)}/image?slot=${slot}`; // only the station route
    card.append(img);
  }
  if (kind === 'confirm' || kind === 'image') {
    yesNo(form, send);
  } else if (kind === 'text' || kind === 'number') {
    const label = el('label', 'field');
    const input = el('input', 'answer');
    input.dataset.autofocus = '';
    input.autocomplete = 'off';
    if (kind === 'number') {
      input.type = 'number';
      input.step = 'any';
      input.inputMode = 'decimal';
      if (d.min !== undefined && d.min !== null) input.min = String(d.min);
      if (d.max !== undefined && d.max !== null) input.max = String(d.max);
      const range = d.min != null && d.max != null ? `${d.min} … ${d.max}` : d.min != null ? `at least ${d.min}`
        : d.max != null ? `at most ${d.max}` : 'a number';
      label.append(el('span', null, `Value (${range})`), input);
    } else {
      input.type = 'text';
      label.append(el('span', null, 'Answer'), input);
    }
    form.append(label);
    submitRow(form);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (kind === 'text') { send(input.value); return; }
      const v = input.value.trim() === '' ? NaN : Number(input.value);
      if (!Number.isFinite(v)) { err.textContent = 'Enter a number.'; input.focus(); return; }
      if (d.min != null && v < d.min) { err.textContent = `At least ${d.min}.`; input.focus(); return; }
      if (d.max != null && v > d.max) { err.textContent = `At most ${d.max}.`; input.focus(); return; }
      send(v);
    });
  } else if (kind === 'choice' || kind === 'multi') {
    const set = el('fieldset', 'choices');
    set.append(el('legend', null, kind === 'multi' ? 'Choose any' : 'Choose one'));
    const name = `choice-${uid}`;
    (d.choices ?? []).forEach((c, i) => {
      const label = el('label', 'choice');
      const input = el('input');
      input.type = kind === 'multi' ? 'checkbox' : 'radio';
      input.name = name;
      input.value = c;
      if (i === 0) input.dataset.autofocus = '';
      label.append(input, el('span', null, c));
      set.append(label);
    });
    form.append(set);
    submitRow(form);
    // Enter on a radio button or checkbox answers (browsers only submit from text fields)
    set.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const picked = [...set.querySelectorAll('input:checked')].map((x) => x.value);
      if (kind === 'choice') {
        if (picked.length !== 1) { err.textContent = 'Choose one.'; return; }
        send(picked[0]);
      } else {
        send(picked);
      }
    });
  }
  card.append(form, err);
  return card;
}
