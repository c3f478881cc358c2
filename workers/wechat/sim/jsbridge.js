/*
 * wxflow's WeChat simulator: a stand-in for the WeixinJSBridge that WeChat's
 * in-app browser gives every page. WeChat's JS-SDK (jweixin) does all its work
 * through WeixinJSBridge.invoke(name, params, callback); this one asks the
 * simulator that served it about wx.config (preVerifyJSAPI) and
 * wx.chooseWXPay (getBrandWCPayRequest), shows a pay sheet in place of
 * WeChat's native one, and answers the rest itself.
 *
 * Include it before the JS-SDK. ?inject=now defines window.WeixinJSBridge at
 * once; by default it is defined when the document has loaded, and then
 * WeixinJSBridgeReady is dispatched once, as WeChat's client does.
 * It defines no window.wx or window.jWeixin: the JS-SDK would then return
 * that object instead of building itself.
 */
(function () {
  'use strict';
  if (window.WeixinJSBridge) {
    return;
  }
  var script = document.currentScript;
  var src = new URL(script ? script.src : location.href);
  var base = src.origin;
  var inject = src.searchParams.get('inject') === 'now' ? 'now' : 'late';
  var handlers = {};

  function ask(body) {
    return fetch(base + '/sim/jsbridge/invoke', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) {
          throw new Error(j.error || 'HTTP ' + r.status);
        }
        return j;
      });
    });
  }

  // answer calls back once, a task later, with a fresh plain object: the
  // JS-SDK changes the object it is given.
  function answer(cb, res) {
    setTimeout(function () {
      if (typeof cb === 'function') {
        cb(Object.assign({}, res));
      }
    }, 0);
  }

  // result passes the simulator's answer on; err_desc says why on the console
  // (the JS-SDK deletes it before the page sees the result).
  function result(name, cb) {
    return function (res) {
      if (res.err_desc) {
        console.warn('WeixinJSBridge (simulator): ' + name + ': ' + res.err_msg + ': ' + res.err_desc);
      }
      answer(cb, res);
    };
  }

  function failed(name, rawName, cb) {
    return function (err) {
      console.warn('WeixinJSBridge (simulator): ' + name + ': ' + err.message);
      answer(cb, { err_msg: rawName + ':fail', err_desc: String(err.message) });
    };
  }

  function fen(n) {
    return (n / 100).toFixed(2);
  }

  // sheet shows WeChat's pay sheet: the amount, the merchant, and the
  // payer's three answers; choose(choice) is called with one of them.
  function sheet(info, choose) {
    var shade = document.createElement('div');
    shade.id = 'wxsim-sheet';
    shade.setAttribute('role', 'dialog');
    shade.setAttribute('aria-label', 'WeChat Pay (simulator)');
    var st = shade.style;
    st.position = 'fixed';
    st.left = st.top = st.right = st.bottom = '0';
    st.background = 'rgba(0,0,0,0.55)';
    st.zIndex = '2147483647';
    st.display = 'flex';
    st.alignItems = 'flex-end';
    st.justifyContent = 'center';
    st.fontFamily = 'system-ui, sans-serif';
    var box = document.createElement('div');
    var bs = box.style;
    bs.background = '#fff';
    bs.width = '100%';
    bs.maxWidth = '420px';
    bs.borderRadius = '12px 12px 0 0';
    bs.padding = '20px';
    bs.boxSizing = 'border-box';
    bs.textAlign = 'center';
    var title = document.createElement('div');
    title.textContent = 'WeChat Pay · 微信支付 (simulator)';
    title.style.color = '#555';
    var amount = document.createElement('div');
    amount.id = 'wxsim-amount';
    amount.textContent = '¥' + fen(info.amount_fen);
    amount.style.fontSize = '2.2em';
    amount.style.margin = '12px 0';
    var who = document.createElement('div');
    who.textContent = 'merchant ' + info.mchid;
    who.style.color = '#888';
    who.style.marginBottom = '16px';
    box.appendChild(title);
    box.appendChild(amount);
    box.appendChild(who);
    [['ok', '确认支付 Pay', '#07c160', '#fff'], ['fail', 'Card refused (bank says no)', '#f2f2f2', '#c00'],
      ['cancel', '取消 Cancel', '#f2f2f2', '#333']].forEach(function (b) {
      var btn = document.createElement('button');
      btn.type = 'button';
      btn.id = 'wxsim-pay-' + b[0];
      btn.textContent = b[1];
      var s = btn.style;
      s.display = 'block';
      s.width = '100%';
      s.margin = '8px 0 0';
      s.padding = '12px';
      s.border = '0';
      s.borderRadius = '6px';
      s.fontSize = '1em';
      s.background = b[2];
      s.color = b[3];
      s.cursor = 'pointer';
      btn.addEventListener('click', function () {
        shade.remove();
        choose(b[0]);
      });
      box.appendChild(btn);
    });
    shade.appendChild(box);
    document.body.appendChild(shade);
  }

  function brandPay(params, cb) {
    ask({ name: 'getBrandWCPayRequest', params: params }).then(function (res) {
      if (!res.sheet) {
        result('getBrandWCPayRequest', cb)(res);
        return;
      }
      sheet(res.sheet, function (choice) {
        ask({ name: 'getBrandWCPayRequest', params: params, choice: choice })
          .then(result('getBrandWCPayRequest', cb), failed('getBrandWCPayRequest', 'get_brand_wcpay_request', cb));
      });
    }, failed('getBrandWCPayRequest', 'get_brand_wcpay_request', cb));
  }

  var bridge = {
    invoke: function (name, params, cb) {
      var p;
      try {
        p = JSON.parse(JSON.stringify(params || {}));
      } catch (e) {
        p = {};
      }
      switch (name) {
        case 'preVerifyJSAPI':
          ask({ name: name, params: p, url: location.href })
            .then(result(name, cb), failed(name, name, cb));
          break;
        case 'getBrandWCPayRequest':
          brandPay(p, cb);
          break;
        case 'getNetworkType':
          answer(cb, { err_msg: 'network_type:wifi' });
          break;
        default:
          console.warn('WeixinJSBridge (simulator): ' + name + ' is not simulated');
          answer(cb, { err_msg: name + ':fail' });
      }
    },
    on: function (name, handler) {
      handlers[name] = handler;
    },
    call: function () {}
  };

  function install() {
    window.WeixinJSBridge = bridge;
  }

  if (inject === 'now') {
    install();
    return;
  }
  function late() {
    install();
    document.dispatchEvent(new Event('WeixinJSBridgeReady'));
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', function () {
      setTimeout(late, 0);
    }, { once: true });
  } else {
    setTimeout(late, 0);
  }
})();
