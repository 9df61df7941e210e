// The console's one script (served from /ui/static; the pages' CSP runs no inline script). Pages
// hand it their data in <script type="application/json"> blocks; it draws the charts as inline
// SVG and keeps a job's page live from its event stream.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];
  const FINAL = ["succeeded", "failed", "cancelled"];

  function el(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (parent) parent.appendChild(node);
    return node;
  }

  function label(parent, x, y, content, attrs) {
    const node = el("text", Object.assign({x, y}, attrs || {}), parent);
    node.textContent = content;
    return node;
  }

  function readData(id) {
    const block = document.getElementById(id);
    return block ? JSON.parse(block.textContent) : null;
  }

  function niceStep(span, count) {
    const raw = span / Math.max(count, 1);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const fraction = raw / power;
    return (fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10) * power;
  }

  function linearTicks(low, high, count) {
    const step = niceStep(high - low, count);
    const ticks = [];
    for (let value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) {
      ticks.push(Number(value.toPrecision(12)));
    }
    return ticks;
  }

  function formatNumber(value) {
    if (value === 0) return "0";
    const size = Math.abs(value);
    if (size >= 1e5 || size < 1e-3) return value.toExponential(0).replace("e+", "e");
    return String(Number(value.toPrecision(4)));
  }

  function shorten(text, length) {
    return text.length > length ? text.slice(0, length - 1) + "…" : text;
  }

  // A line chart: integer epoch ticks, labelled axes, the legend beside the plot (never over
  // it). On a log scale a value <= 0 is drawn at a floor a decade below the smallest positive
  // value, as a hollow triangle, and the legend says so: no point is dropped.
  function lineChart(options) {
    const width = options.width || 600, height = options.height || 320;
    const legendWidth = 190;
    const box = {left: 70, top: 30, right: width - legendWidth - 16, bottom: height - 48};
    const series = options.series.filter((s) => s.points.length > 0);
    const svg = el("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": options.title || options.yLabel, class: "line-chart"});
    if (options.title) label(svg, box.left, 18, options.title, {class: "title"});
    if (!series.length) {
      label(svg, (box.left + box.right) / 2, (box.top + box.bottom) / 2, "no epochs yet",
        {"text-anchor": "middle", class: "empty"});
      return svg;
    }
    const points = series.flatMap((s) => s.points);
    let xLow = Math.min(...points.map((p) => p[0]));
    let xHigh = Math.max(...points.map((p) => p[0]), options.xMax || 0);
    if (xHigh === xLow) xHigh = xLow + 1;
    const values = points.map((p) => p[1]);
    const positives = values.filter((v) => v > 0);
    const log = options.log;
    let floor = null;
    if (log) {
      floor = positives.length ? Math.min(...positives) / 10 : 1e-8;
      floor = Math.pow(10, Math.floor(Math.log10(floor)));
    }
    const shown = (v) => (log ? Math.log10(v > 0 ? v : floor) : v);
    let yLow = Math.min(...values.map(shown)), yHigh = Math.max(...values.map(shown));
    if (log) {
      // Whole decades, padded a little so points at the floor sit above the axis.
      yLow = Math.floor(yLow) - 0.1;
      yHigh = Math.max(Math.ceil(yHigh), Math.ceil(yLow) + 1) + 0.1;
    } else {
      if (yHigh === yLow) { yLow -= Math.abs(yLow) * 0.1 || 1; yHigh += Math.abs(yHigh) * 0.1 || 1; }
      const pad = (yHigh - yLow) * 0.05;
      yLow -= pad; yHigh += pad;
    }
    const x = (v) => box.left + (v - xLow) / (xHigh - xLow) * (box.right - box.left);
    const y = (v) => box.bottom - (v - yLow) / (yHigh - yLow) * (box.bottom - box.top);

    const grid = el("g", {class: "grid"}, svg);
    const axes = el("g", {class: "axis"}, svg);
    const xStep = Math.max(1, Math.round(niceStep(xHigh - xLow, 8)));
    const xTicks = [];
    for (let epoch = Math.ceil(xLow / xStep) * xStep; epoch <= xHigh; epoch += xStep) xTicks.push(epoch);
    // The first epoch gets its tick too, unless the next tick is too close to read.
    if (xTicks[0] !== xLow && (!xTicks.length || xTicks[0] - xLow >= xStep / 2)) xTicks.unshift(xLow);
    for (const epoch of xTicks) {
      el("line", {x1: x(epoch), x2: x(epoch), y1: box.top, y2: box.bottom}, grid);
      el("line", {x1: x(epoch), x2: x(epoch), y1: box.bottom, y2: box.bottom + 5}, axes);
      label(svg, x(epoch), box.bottom + 18, String(epoch), {"text-anchor": "middle", class: "tick"});
    }
    const yTicks = log
      ? Array.from({length: Math.floor(yHigh) - Math.ceil(yLow) + 1}, (_, i) => Math.ceil(yLow) + i)
      : linearTicks(yLow, yHigh, 6);
    for (const tick of yTicks) {
      el("line", {x1: box.left, x2: box.right, y1: y(tick), y2: y(tick)}, grid);
      el("line", {x1: box.left - 5, x2: box.left, y1: y(tick), y2: y(tick)}, axes);
      label(svg, box.left - 8, y(tick) + 4, formatNumber(log ? Math.pow(10, tick) : tick),
        {"text-anchor": "end", class: "tick"});
    }
    el("path", {d: `M${box.left},${box.top}V${box.bottom}H${box.right}`, fill: "none"}, axes);
    label(svg, (box.left + box.right) / 2, height - 8, options.xLabel || "epoch",
      {"text-anchor": "middle", class: "axis-label"});
    label(svg, 0, 0, (options.yLabel || "") + (log ? " (log scale)" : ""), {
      "text-anchor": "middle", class: "axis-label",
      transform: `translate(16 ${(box.top + box.bottom) / 2}) rotate(-90)`,
    });

    let clamped = 0;
    series.forEach((s, index) => {
      const color = COLORS[index % COLORS.length];
      const path = s.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(shown(p[1])).toFixed(1)}`);
      el("path", {d: path.join(""), fill: "none", stroke: color, "stroke-width": 2,
        "stroke-dasharray": s.dashed ? "6 3" : "none", class: "series"}, svg);
      const marks = s.points.length <= 40;
      for (const [epoch, value] of s.points) {
        const px = x(epoch), py = y(shown(value));
        if (log && value <= 0) {
          clamped += 1;
          el("path", {d: `M${px - 5},${py - 4}L${px + 5},${py - 4}L${px},${py + 5}Z`, fill: "#fff",
            stroke: color, "stroke-width": 1.5, class: "clamped"}, svg);
        } else if (marks) {
          el("circle", {cx: px, cy: py, r: 2.5, fill: color}, svg);
        }
      }
    });

    const legend = el("g", {class: "legend", transform: `translate(${box.right + 16} ${box.top})`}, svg);
    series.forEach((s, index) => {
      const color = COLORS[index % COLORS.length];
      el("line", {x1: 0, x2: 22, y1: index * 20, y2: index * 20, stroke: color, "stroke-width": 2,
        "stroke-dasharray": s.dashed ? "6 3" : "none"}, legend);
      label(legend, 28, index * 20 + 4, shorten(s.name, 24));
    });
    if (clamped) {
      const row = series.length * 20 + 6;
      el("path", {d: `M6,${row - 4}L16,${row - 4}L11,${row + 5}Z`, fill: "#fff", stroke: "#444"}, legend);
      label(legend, 28, row + 4, `≤ 0, drawn at ${formatNumber(floor)}`, {class: "clamped-note"});
    }
    return svg;
  }

  function figure(container, svg, caption) {
    const node = document.createElement("figure");
    node.className = "chart";
    node.appendChild(svg);
    if (caption) {
      const text = document.createElement("figcaption");
      text.textContent = caption;
      node.appendChild(text);
    }
    container.appendChild(node);
  }

  // Losses and metrics in pairs: `loss` with `val_loss`, `mae` with `val_mae`.
  function curveGroups(history) {
    const groups = new Map();
    for (const row of history) {
      for (const name of Object.keys(row.metrics)) {
        const base = name.replace(/^val_/, "");
        if (!groups.has(base)) groups.set(base, new Set());
        groups.get(base).add(name);
      }
    }
    return [...groups.entries()].sort(([a], [b]) => (a === "loss" ? -1 : b === "loss" ? 1 : a < b ? -1 : 1))
      .map(([base, names]) => ({base, names: [...names].sort((a, b) => a.length - b.length)}));
  }

  function drawCurves(container, history, log, xMax) {
    container.replaceChildren();
    const groups = curveGroups(history);
    if (!groups.length) {
      figure(container, lineChart({series: [], title: "learning curves", yLabel: "", log}));
      return;
    }
    for (const group of groups) {
      const series = group.names.map((name) => ({
        name: name.startsWith("val_") ? "validation" : name === group.base ? "training" : name,
        dashed: name.startsWith("val_"),
        points: history.filter((row) => row.metrics[name] !== undefined && row.metrics[name] !== null)
          .map((row) => [row.epoch, row.metrics[name]]),
      }));
      figure(container, lineChart({series, title: `${group.base}: training and validation`,
        yLabel: group.base, xLabel: "epoch", log, xMax}));
    }
  }

  function jobPage() {
    const data = readData("job-data");
    if (!data) return;
    const container = document.getElementById("curves");
    const toggle = document.getElementById("log-scale");
    const history = data.history.slice();
    // The stream replays a job's epochs from the first: only those after the page's are new.
    let lastEpoch = history.length ? history[history.length - 1].epoch : 0;
    let pending = false;
    const redraw = () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        drawCurves(container, history, toggle.checked, data.epochs_planned);
      });
    };
    toggle.addEventListener("change", redraw);
    redraw();
    if (data.final || typeof EventSource === "undefined") return;

    const table = document.getElementById("metrics");
    const addRow = (row) => {
      const header = table.tHead.rows[0];
      const columns = [...header.cells].slice(2).map((cell) => cell.textContent);
      if (!columns.length) {
        const names = Object.keys(row.metrics).sort((a, b) =>
          a.replace(/^val_/, "").localeCompare(b.replace(/^val_/, "")) || a.length - b.length);
        for (const name of names) {
          const cell = document.createElement("th");
          cell.className = "num";
          cell.textContent = name;
          header.appendChild(cell);
          columns.push(name);
        }
      }
      const tr = table.tBodies[0].insertRow();
      tr.dataset.epoch = row.epoch;
      const cells = [String(row.epoch), row.seconds.toFixed(2),
        ...columns.map((name) => (row.metrics[name] === undefined ? "" : String(Number(row.metrics[name].toPrecision(5)))))];
      for (const text of cells) {
        const td = tr.insertCell();
        td.className = "num";
        td.textContent = text;
      }
    };
    const source = new EventSource(data.events);
    source.addEventListener("epoch", (event) => {
      const row = JSON.parse(event.data);
      if (row.epoch <= lastEpoch) return;
      lastEpoch = row.epoch;
      history.push(row);
      addRow(row);
      document.getElementById("progress").textContent = `epoch ${row.epoch} of ${data.epochs_planned}`;
      redraw();
    });
    source.addEventListener("status", (event) => {
      const job = JSON.parse(event.data);
      const status = document.getElementById("status");
      status.textContent = job.status;
      status.className = "status " + job.status;
      if (FINAL.includes(job.status)) {
        source.close();
        // The finished job's model, test metrics and predict form come with the page.
        setTimeout(() => window.location.reload(), 500);
      }
    });
  }

  function comparePage() {
    const data = readData("compare-data");
    if (!data) return;
    const container = document.getElementById("curves");
    const toggle = document.getElementById("log-scale");
    const draw = () => {
      container.replaceChildren();
      figure(container, lineChart({series: data.series, title: data.y_label, yLabel: data.y_label,
        xLabel: data.x_label, log: toggle.checked, width: 900, height: 400}));
    };
    toggle.addEventListener("change", draw);
    draw();
  }

  // Parallel coordinates: one vertical axis per parameter and one for the metric; one line per
  // trial, coloured from best (blue) to worst (orange) by the metric.
  function parallelChart(data, metric) {
    const names = [...data.parameters, metric];
    const width = Math.max(640, names.length * 170), height = 340;
    const box = {left: 70, right: width - 90, top: 50, bottom: height - 30};
    const svg = el("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `parameters against ${metric}`, class: "parallel-chart"});
    const valueOf = (trial, name) => (name === metric && !data.parameters.includes(name)
      ? trial.metrics[name] : trial.parameters[name]);
    const axes = names.map((name, index) => {
      const raw = data.trials.map((t) => valueOf(t, name)).filter((v) => v !== undefined && v !== null);
      const numeric = raw.length > 0 && raw.every((v) => typeof v === "number");
      const axis = {name, x: box.left + index * (box.right - box.left) / Math.max(names.length - 1, 1), numeric};
      if (numeric) {
        let low = Math.min(...raw), high = Math.max(...raw);
        axis.log = low > 0 && high / low >= 100;
        if (axis.log) { low = Math.log10(low); high = Math.log10(high); }
        if (low === high) { low -= 1; high += 1; }
        axis.low = low; axis.high = high;
        axis.position = (v) => box.bottom - ((axis.log ? Math.log10(v) : v) - low) / (high - low) * (box.bottom - box.top);
        axis.ticks = axis.log ? [Math.pow(10, low), Math.pow(10, high)] : [low, high];
        if (!axis.log && raw.length) axis.ticks = [Math.min(...raw), Math.max(...raw)];
      } else {
        const distinct = [...new Set(raw.map((v) => JSON.stringify(v)))].sort();
        axis.position = (v) => {
          const at = distinct.indexOf(JSON.stringify(v));
          return distinct.length === 1 ? (box.top + box.bottom) / 2
            : box.bottom - at / (distinct.length - 1) * (box.bottom - box.top);
        };
        axis.labels = distinct;
      }
      return axis;
    });
    const metricAxis = axes[axes.length - 1];
    const scored = data.trials.filter((t) => typeof valueOf(t, metric) === "number");
    const order = scored.map((t) => valueOf(t, metric)).sort((a, b) => a - b);
    const better = data.direction === "max" && metric === data.metric ? -1 : 1;
    const colorOf = (trial) => {
      const value = valueOf(trial, metric);
      if (typeof value !== "number") return "#b9c0c7";
      let share = order.length > 1 ? order.indexOf(value) / (order.length - 1) : 0;
      if (better < 0) share = 1 - share;
      const hue = 215 - share * 185;  // blue (best) to orange (worst)
      return `hsl(${hue}, 70%, 45%)`;
    };
    const lines = el("g", {class: "trials"}, svg);
    for (const trial of data.trials) {
      const parts = [];
      for (const axis of axes) {
        const value = valueOf(trial, axis.name);
        if (value === undefined || value === null) continue;
        parts.push(`${parts.length ? "L" : "M"}${axis.x.toFixed(1)},${axis.position(value).toFixed(1)}`);
      }
      if (parts.length < 2) continue;
      const path = el("path", {d: parts.join(""), fill: "none", stroke: colorOf(trial), "stroke-width": 2,
        "stroke-opacity": 0.85, class: "trial"}, lines);
      const title = el("title", {}, path);
      title.textContent = `trial ${trial.trial}: ${metric} = ${valueOf(trial, metric)}`;
    }
    for (const axis of axes) {
      const group = el("g", {class: "axis"}, svg);
      el("line", {x1: axis.x, x2: axis.x, y1: box.top, y2: box.bottom, "stroke-width": 1.5}, group);
      const parts = axis.name.split(".");
      label(svg, axis.x, box.top - 24, shorten(parts.slice(-2).join("."), 26),
        {"text-anchor": "middle", class: axis === metricAxis ? "title" : "axis-label"});
      if (axis.numeric) {
        const [low, high] = axis.ticks;
        label(svg, axis.x, box.bottom + 18, formatNumber(low), {"text-anchor": "middle", class: "tick"});
        label(svg, axis.x, box.top - 8, formatNumber(high) + (axis.log ? " (log)" : ""),
          {"text-anchor": "middle", class: "tick"});
      } else {
        for (const value of axis.labels) {
          label(svg, axis.x + 6, axis.position(JSON.parse(value)) + 4, shorten(value, 14), {class: "tick"});
        }
      }
    }
    return svg;
  }

  function sweepPage() {
    const data = readData("sweep-data");
    if (!data) return;
    const select = document.getElementById("pc-metric");
    for (const name of data.metrics) {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      option.selected = name === data.metric;
      select.appendChild(option);
    }
    const container = document.getElementById("parallel");
    const draw = () => {
      container.replaceChildren();
      const metric = select.value || data.metric;
      const better = data.direction === "max" && metric === data.metric ? "higher" : "lower";
      figure(container, parallelChart(data, metric),
        `One line per trial, coloured by ${metric}: blue is best (${better} is better), orange worst, grey not measured yet.`);
    };
    select.addEventListener("change", draw);
    draw();
  }

  // For the browser tests, which draw charts from data of their own.
  window.dendriteCharts = {lineChart, parallelChart};

  document.addEventListener("DOMContentLoaded", () => {
    jobPage();
    comparePage();
    sweepPage();
  });
})();
