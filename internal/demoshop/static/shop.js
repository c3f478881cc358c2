/*
 * The demo shop's front end: what a shop's page does to take a WeChat payment
 * through wxflow. Its backend (the shop's, not wxflow's) holds the shop key
 * and answers under /demo/api/.
 *
 * 1. wx.config with the signature the backend asked wxflow for (GET
 *    /v1/jssdk/config?url=<this page without its #fragment>).
 * 2. wx.chooseWXPay with the order's choose_wx_pay parameters (GET
 *    /v1/orders/{id}/pay-params), after wx.ready.
 * 3. The success callback is only the payer's word: the page polls the
 *    backend, which reads the order from wxflow, and says "paid" when wxflow
 *    has applied WeChat's verified notification.
 */
(function () {
  'use strict';
  var main = document.querySelector('main');
  if (!main) {
    return;
  }

  function $(id) {
    return document.getElementById(id);
  }
  function set(id, text) {
    var el = $(id);
    if (el) {
      el.textContent = text;
    }
  }
  function show(id, text) {
    var el = $(id);
    if (el) {
      if (text !== undefined) {
        el.textContent = text;
      }
      el.hidden = false;
    }
  }
  function hide(id) {
    var el = $(id);
    if (el) {
      el.hidden = true;
    }
  }
  function yuan(fen) {
    return '¥' + (fen / 100).toFixed(2);
  }
  function answer(r) {
    return r.json().catch(function () { return {}; }).then(function (j) {
      if (!r.ok) {
        var e = new Error(j.error || j.reason || 'HTTP ' + r.status);
        e.status = r.status;
        e.code = j.code;
        throw e;
      }
      return j;
    });
  }
  function getJSON(url) {
    return fetch(url, { credentials: 'same-origin' }).then(answer);
  }
  function postJSON(url, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    }).then(answer);
  }

  if (main.dataset.page === 'index') {
    index();
  } else if (main.dataset.page === 'order') {
    orderPage();
  }

  // The front page's mini-program panel: the simulator plays wx.login(), the
  // shop creates the order with the code.
  function index() {
    var sim = main.dataset.sim;
    Array.prototype.forEach.call(document.querySelectorAll('.mp-buy'), function (btn) {
      btn.addEventListener('click', function () {
        btn.disabled = true;
        set('mp-step', 'wx.login() (played by the simulator)…');
        fetch(sim + '/sim/login', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: '{}'
        }).then(answer).then(function (login) {
          set('mp-step', 'wx.login() gave the code ' + login.code + '; the shop creates the order with it…');
          return postJSON('/demo/api/mp/orders', { item: btn.dataset.item, api: btn.dataset.api, login_code: login.code });
        }).then(function (o) {
          location.href = '/demo/orders/' + encodeURIComponent(o.id);
        }).catch(function (e) {
          set('mp-step', 'Failed: ' + e.message);
          btn.disabled = false;
        });
      });
    });
  }

  function orderPage() {
    var id = main.dataset.id;
    var jsapi = main.dataset.client === 'jsapi';
    var mistake = main.dataset.mistake;
    var polls = 0;
    var last = null; // the last status the backend gave
    var configOK = false;
    var paying = false;
    var refundNo = '';
    var refunding = false;
    var mpParams = null;

    // render shows the order as the shop's backend read it from wxflow.
    function render(s) {
      last = s;
      polls++;
      main.dataset.state = s.state;
      main.dataset.polls = String(polls);
      set('order-state', s.state);
      set('polls', '(read ' + polls + (polls === 1 ? ' time)' : ' times)'));
      if (s.paid) {
        var how = 'wxflow applied WeChat’s verified payment notification';
        if (s.paid_by && s.paid_by.actor !== 'wechat:notify') {
          how = 'wxflow found the payment by asking WeChat (' + s.paid_by.actor + ': ' + s.paid_by.reason + ')';
        }
        show('paid', 'Paid ' + yuan(s.paid_fen) + ': ' + how + (s.transaction_id ? ', transaction ' + s.transaction_id : '') + '.');
        main.dataset.paid = 'true';
        set('pay-note', '');
        set('mp-pay-result', '');
      } else {
        hide('paid');
      }
      if (s.state === 'failed') {
        show('failed', 'The order failed: ' + (s.fail_reason || 'no reason given'));
      } else if (s.state === 'closed') {
        show('failed', 'The order is closed: it was not paid in time.');
      }
      renderRefunds(s);
      if (jsapi) {
        $('pay').disabled = !(configOK && s.state === 'signed' && !paying);
      } else {
        renderMiniProgram(s);
      }
    }

    function renderRefunds(s) {
      var list = $('refund-list');
      list.textContent = '';
      s.refunds.forEach(function (r) {
        var li = document.createElement('li');
        li.textContent = r.out_refund_no + ': ' + yuan(r.amount_fen) + ', ' + r.status;
        li.dataset.status = r.status;
        list.appendChild(li);
        if (r.out_refund_no === refundNo) {
          set('refund-status', 'refund ' + r.out_refund_no + ': ' + r.status);
          if (r.status === 'failed') {
            refunding = false;
          }
        }
      });
      if (s.refunded_fen > 0 && s.refunded_fen === s.paid_fen && s.state === 'refunded') {
        show('refunded', 'Refunded ' + yuan(s.refunded_fen) + ': WeChat settled the refund.');
        refunding = false;
      }
      $('refund').disabled = !(s.paid_fen > s.refunded_fen && s.state !== 'refunding' && !refunding &&
        (s.state === 'notified' || s.state === 'refunded'));
    }

    function poll() {
      getJSON('/demo/api/orders/' + encodeURIComponent(id)).then(render, function (e) {
        set('polls', '(the shop could not read the order: ' + e.message + ')');
      }).then(function () {
        setTimeout(poll, 1000);
      });
    }

    $('refund').addEventListener('click', function () {
      $('refund').disabled = true;
      refunding = true;
      set('refund-status', 'asking the shop for a refund…');
      postJSON('/demo/api/orders/' + encodeURIComponent(id) + '/refund', {}).then(function (r) {
        refundNo = r.out_refund_no;
        set('refund-status', 'refund ' + r.out_refund_no + ' of ' + yuan(r.amount_fen) + ' asked (' +
          (r.http_status ? 'wxflow: HTTP ' + r.http_status + ', ' : '') + r.answer + '); waiting for WeChat…');
      }, function (e) {
        refunding = false;
        set('refund-status', 'Refund refused: ' + e.message);
        if (last) {
          renderRefunds(last);
        }
      });
    });

    if (jsapi) {
      configure();
    } else {
      $('mp-pay').addEventListener('click', payAsPayer);
    }
    poll();

    // configure runs wx.config with the signature of this very page.
    function configure() {
      if (navigator.userAgent.toLowerCase().indexOf('micromessenger') < 0) {
        show('ua-notice');
      }
      if (typeof wx === 'undefined' || typeof wx.config !== 'function') {
        set('config-status', 'WeChat’s JS-SDK did not load');
        return;
      }
      var here = location.href.split('#')[0];
      // The mistake: signing the page without its query (as a shop does that
      // signs the OAuth callback's URL before the code and state were added).
      var signed = mistake === 'sign-other-url' ? location.origin + location.pathname : here;
      var configError = '';
      getJSON('/demo/api/jssdk-config?url=' + encodeURIComponent(signed)).then(function (c) {
        set('config-status', 'sent; waiting for WeChat to check the signature…');
        wx.config({
          debug: false,
          appId: c.appId,
          timestamp: c.timestamp,
          nonceStr: c.nonceStr,
          signature: c.signature,
          jsApiList: ['chooseWXPay']
        });
        wx.error(function (res) {
          configError = res.errMsg;
          set('config-error', res.errMsg);
          set('config-status', 'failed: WeChat refused the signature');
          main.dataset.config = 'error';
        });
        // wx.ready runs after wx.error too: it only means WeChat answered.
        wx.ready(function () {
          if (configError) {
            return;
          }
          configOK = true;
          main.dataset.config = 'ok';
          set('config-status', 'config:ok (wx.ready)');
          if (last) {
            render(last);
          }
        });
      }, function (e) {
        set('config-status', 'the shop could not sign wx.config: ' + e.message);
      });
      // The simulator's bridge comes from its HTTPS origin: a browser that
      // does not trust its CA never loads it.
      window.addEventListener('load', function () {
        setTimeout(function () {
          if (main.dataset.bridge && !window.WeixinJSBridge) {
            show('bridge-notice', 'The simulator’s WeixinJSBridge did not load from ' + main.dataset.bridge +
              ': does this browser trust the simulator’s certificate? Open that address once and accept it.');
          }
        }, 1000);
      });
      $('pay').addEventListener('click', pay);
    }

    function pay() {
      paying = true;
      $('pay').disabled = true;
      set('pay-callback', 'asking the shop for the pay parameters…');
      getJSON('/demo/api/orders/' + encodeURIComponent(id) + '/pay-params').then(function (pp) {
        var p = Object.assign({}, pp.choose_wx_pay);
        if (mistake === 'forget-sign-type') {
          delete p.signType;
        }
        set('pay-params', JSON.stringify(p, null, 2));
        set('pay-callback', 'the pay sheet is open…');
        wx.chooseWXPay(Object.assign(p, {
          success: function (res) {
            set('pay-callback', res.errMsg);
            set('pay-note', 'WeChat says the payer confirmed. That is not proof: waiting for wxflow to have WeChat’s verified notification…');
          },
          cancel: function (res) {
            paying = false;
            set('pay-callback', res.errMsg);
            set('pay-note', 'The payer closed the pay sheet.');
          },
          fail: function (res) {
            paying = false;
            set('pay-callback', res.errMsg);
            set('pay-note', 'WeChat refused to pay.');
          }
        }));
      }, function (e) {
        paying = false;
        set('pay-callback', 'no pay parameters: ' + e.message);
      }).then(function () {
        if (last) {
          render(last);
        }
      });
    }

    // The mini-program: the parameters of wx.requestPayment, once signed.
    function renderMiniProgram(s) {
      var btn = $('mp-pay');
      btn.disabled = !(mpParams && s.state === 'signed' && !paying);
      if (s.state !== 'signed' || mpParams) {
        return;
      }
      mpParams = {};
      getJSON('/demo/api/orders/' + encodeURIComponent(id) + '/pay-params').then(function (pp) {
        mpParams = pp.request_payment;
        set('mp-params', JSON.stringify(mpParams, null, 2));
        set('mp-code', 'wx.requestPayment(Object.assign(' + JSON.stringify(mpParams) +
          ', {\n  success() { /* ask your server: the order is paid only when wxflow says so */ },\n  fail(err) { /* cancelled or refused */ }\n}))');
        btn.disabled = false;
      }, function (e) {
        mpParams = null;
        set('mp-params', 'no pay parameters yet: ' + e.message);
      });
    }

    function payAsPayer() {
      var prepay = (mpParams && mpParams.package || '').replace(/^prepay_id=/, '');
      paying = true;
      $('mp-pay').disabled = true;
      fetch(main.dataset.sim + '/sim/pay', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ prepay_id: prepay })
      }).then(answer).then(function (r) {
        set('mp-pay-result', 'the simulator: ' + r.trade_state + '; waiting for wxflow to have WeChat’s verified notification…');
      }, function (e) {
        paying = false;
        set('mp-pay-result', 'the simulator refused: ' + e.message);
      });
    }
  }
})();
